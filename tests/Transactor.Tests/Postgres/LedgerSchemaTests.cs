using System.Data;
using Npgsql;
using Transactor.Persistence;

namespace Transactor.Tests.Postgres;

[Collection(PostgresTestGroup.Name)]
public sealed class LedgerSchemaTests(PostgresFixture postgres)
{
    private static readonly (string Service, string State, long N0, long N1, string? Extension)[] s_keys =
    [
        ("ledger", "account", 0, 0, "acct/alice"),
        ("ledger", "transfer", 0, 0, "xfer/k-1"),
        ("ledger", "recovery", 7, 0, null),
        ("ledger", "recovery", -1, long.MinValue, ""),
        ("", "", long.MaxValue, 1, "\\x00 back\\slash"),
        ("sërvice", "ßtate", 42, -42, "ключ/€/😀"),
        ("a", "bc", 1, 2, "N"),
        ("ab", "c", 1, 2, "S1:N"),
    ];

    [Fact]
    public async Task Every_migration_keeps_the_grain_keys_the_first_one_computed()
    {
        var (database, connection) = await DatabaseMigratedThrough(1);
        await using var _ = connection;
        var before = await Keys(connection);
        Assert.Equal(s_keys.Length, before.Distinct().Count());
        await LedgerSchema.MigrateAsync(database);
        var after = await Keys(connection);

        Assert.Equal(before, after);
    }

    /// <summary>
    /// The grain-storage write contract the ADO.NET provider relies on (one row with the new version
    /// on success, no row on a stale version or on a first insert that finds a row), through the
    /// statement the current migrations install, on rows the first migrations' statement wrote; and
    /// that statement still works after the last migration (a silo of the earlier version keeps the
    /// text it loaded at start-up).
    /// </summary>
    [Fact]
    public async Task Writes_keep_the_providers_contract_across_migrations()
    {
        var (database, connection) = await DatabaseMigratedThrough(2);
        await using var _ = connection;
        var earlierWrite = await Query(connection, "WriteToStorageKey");
        var (first, second, third) = (s_keys[0], s_keys[5], s_keys[4]);
        var v1 = Assert.Single(await Write(connection, earlierWrite, first, null, [1]));
        var v2 = Assert.Single(await Write(connection, earlierWrite, first, v1, [2]));

        await LedgerSchema.MigrateAsync(database);
        var write = await Query(connection, "WriteToStorageKey");
        Assert.NotEqual(earlierWrite, write);

        Assert.Empty(await Write(connection, write, first, v1, [9]));
        Assert.Empty(await Write(connection, write, first, null, [9]));
        var v3 = Assert.Single(await Write(connection, write, first, v2, [3]));
        Assert.Equal(v2 + 1, v3);
        await AssertStored(connection, first, [3], v3);

        var w1 = Assert.Single(await Write(connection, write, second, null, [4]));
        Assert.Empty(await Write(connection, write, second, null, [9]));
        var w2 = Assert.Single(await Write(connection, write, second, w1, [5]));
        await AssertStored(connection, second, [5], w2);

        // A silo still running the earlier statement text.
        var x1 = Assert.Single(await Write(connection, earlierWrite, third, null, [6]));
        Assert.Empty(await Write(connection, earlierWrite, third, x1 + 1, [9]));
        var x2 = Assert.Single(await Write(connection, earlierWrite, third, x1, [7]));
        await AssertStored(connection, third, [7], x2);

        // Every row's stored key is the one the key function gives for its identity.
        await using var check = new NpgsqlCommand(
            "SELECT count(*) FILTER (WHERE grain_key = orleans_grain_state_key(service_id, state_name, grain_id_n0, grain_id_n1, grain_id_ext)), count(*) FROM orleans_grain_state",
            connection);
        await using var reader = await check.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(3, reader.GetInt64(1));
        Assert.Equal(reader.GetInt64(1), reader.GetInt64(0));
    }

    /// <summary>
    /// A new database with the migrations up to <paramref name="lastVersion"/> run by hand, as a
    /// database that earlier versions created looks (LedgerSchema.MigrateAsync runs them again, as
    /// each is idempotent), and an open connection to it.
    /// </summary>
    private async Task<(string Database, NpgsqlConnection Connection)> DatabaseMigratedThrough(int lastVersion)
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        foreach (var (_, _, sql) in LedgerSchema.Migrations.Where(m => m.Version <= lastVersion))
        {
            await using var migrate = new NpgsqlCommand(sql, connection);
            await migrate.ExecuteNonQueryAsync();
        }

        return (database, connection);
    }

    private static async Task<string> Query(NpgsqlConnection connection, string key)
    {
        await using var command = new NpgsqlCommand("SELECT QueryText FROM OrleansQuery WHERE QueryKey = @key", connection);
        command.Parameters.AddWithValue("key", key);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Runs a storage statement with the parameters and DbTypes the ADO.NET provider sends.</summary>
    private static NpgsqlCommand Statement(NpgsqlConnection connection, string text, (string Service, string State, long N0, long N1, string? Extension) key)
    {
        var command = new NpgsqlCommand(text, connection);
        Add(command, "GrainIdHash", DbType.Int32, 17);
        Add(command, "GrainIdN0", DbType.Int64, key.N0);
        Add(command, "GrainIdN1", DbType.Int64, key.N1);
        Add(command, "GrainTypeHash", DbType.Int32, 23);
        Add(command, "GrainTypeString", DbType.String, key.State);
        Add(command, "GrainIdExtensionString", DbType.String, key.Extension);
        Add(command, "ServiceId", DbType.String, key.Service);
        return command;
    }

    private static void Add(NpgsqlCommand command, string name, DbType type, object? value) =>
        command.Parameters.Add(new NpgsqlParameter { ParameterName = name, DbType = type, Value = value ?? DBNull.Value });

    private static async Task<List<int>> Write(NpgsqlConnection connection, string text, (string, string, long, long, string?) key, int? version, byte[] payload)
    {
        await using var command = Statement(connection, text, key);
        Add(command, "GrainStateVersion", DbType.Int32, version);
        Add(command, "PayloadBinary", DbType.Binary, payload);
        var versions = new List<int>();
        await using var reader = await command.ExecuteReaderAsync();
        do
        {
            while (await reader.ReadAsync())
            {
                Assert.Equal("NewGrainStateVersion", reader.GetName(0));
                versions.Add(reader.GetInt32(0));
            }
        }
        while (await reader.NextResultAsync());
        return versions;
    }

    private static async Task AssertStored(NpgsqlConnection connection, (string, string, long, long, string?) key, byte[] payload, int version)
    {
        await using var command = Statement(connection, await Query(connection, "ReadFromStorageKey"), key);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(payload, (byte[])reader["PayloadBinary"]);
        Assert.Equal(version, (int)reader["Version"]);
        Assert.False(await reader.ReadAsync());
    }

    /// <summary>The keys the function gives for <see cref="s_keys"/>, in hex.</summary>
    private static async Task<List<string>> Keys(NpgsqlConnection connection)
    {
        var keys = new List<string>();
        foreach (var (service, state, n0, n1, extension) in s_keys)
        {
            await using var command = new NpgsqlCommand("SELECT orleans_grain_state_key(@s, @t, @n0, @n1, @e)", connection);
            command.Parameters.AddWithValue("s", service);
            command.Parameters.AddWithValue("t", state);
            command.Parameters.AddWithValue("n0", n0);
            command.Parameters.AddWithValue("n1", n1);
            command.Parameters.Add(new NpgsqlParameter<string?>("e", NpgsqlTypes.NpgsqlDbType.Text) { TypedValue = extension });
            keys.Add(Convert.ToHexString((byte[])(await command.ExecuteScalarAsync())!));
        }

        return keys;
    }
}
