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
        var database = await postgres.Server.CreateDatabaseAsync();
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        var (_, _, first) = LedgerSchema.Migrations[0];
        await using (var migrate = new NpgsqlCommand(first, connection))
        {
            await migrate.ExecuteNonQueryAsync();
        }

        var before = await Keys(connection);
        Assert.Equal(s_keys.Length, before.Distinct().Count());
        await LedgerSchema.MigrateAsync(database);
        var after = await Keys(connection);

        Assert.Equal(before, after);
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
