using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Transactor.Persistence;

/// <summary>
/// Creates and upgrades Transactor's PostgreSQL schema: the tables and <c>OrleansQuery</c> rows the
/// Orleans ADO.NET providers use for clustering, grain storage and reminders. Migrations are the
/// embedded <c>Migrations/NNN_name.sql</c> files, applied in order, each once, under an advisory
/// lock so silos starting together do not race. Safe to run at every start.
/// </summary>
public static partial class LedgerSchema
{
    /// <summary>The invariant name Orleans' ADO.NET providers use for Npgsql.</summary>
    public const string Invariant = "Npgsql";

    // Any constant works; it only has to be the same in every process that migrates.
    private const long AdvisoryLockKey = 0x5472616E73616374; // "Transact"

    /// <summary>The migrations shipped with this build, in order.</summary>
    public static IReadOnlyList<(int Version, string Name, string Sql)> Migrations { get; } = LoadMigrations();

    /// <summary>Applies every migration not yet applied to the database of <paramref name="connectionString"/>. Returns how many ran.</summary>
    public static async Task<int> MigrateAsync(string connectionString, ILogger? logger = null, CancellationToken cancellation = default)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellation);
        await Execute(connection, $"SELECT pg_advisory_lock({AdvisoryLockKey})", cancellation);
        try
        {
            await Execute(connection, """
                CREATE TABLE IF NOT EXISTS transactor_schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """, cancellation);
            var applied = new HashSet<int>();
            await using (var read = new NpgsqlCommand("SELECT version FROM transactor_schema_migrations", connection))
            await using (var reader = await read.ExecuteReaderAsync(cancellation))
            {
                while (await reader.ReadAsync(cancellation))
                {
                    applied.Add(reader.GetInt32(0));
                }
            }

            var ran = 0;
            foreach (var (version, name, sql) in Migrations.Where(m => !applied.Contains(m.Version)))
            {
                await using var transaction = await connection.BeginTransactionAsync(cancellation);
                await using (var migrate = new NpgsqlCommand(sql, connection, transaction))
                {
                    await migrate.ExecuteNonQueryAsync(cancellation);
                }

                await using (var record = new NpgsqlCommand("INSERT INTO transactor_schema_migrations (version, name) VALUES (@version, @name)", connection, transaction))
                {
                    record.Parameters.AddWithValue("version", version);
                    record.Parameters.AddWithValue("name", name);
                    await record.ExecuteNonQueryAsync(cancellation);
                }

                await transaction.CommitAsync(cancellation);
                ran++;
                if (logger is not null)
                {
                    LogApplied(logger, version, name);
                }
            }

            return ran;
        }
        finally
        {
            await Execute(connection, $"SELECT pg_advisory_unlock({AdvisoryLockKey})", CancellationToken.None);
        }
    }

    /// <summary>
    /// The distinct PostgreSQL connection strings the <c>Orleans</c> configuration section names for
    /// clustering, grain storage and reminders (by <c>ConnectionString</c>, or by <c>ConnectionName</c>
    /// looked up in <c>ConnectionStrings</c>), where the provider is <c>AdoNet</c> with invariant Npgsql.
    /// </summary>
    public static IReadOnlyList<string> ConfiguredConnectionStrings(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var sections = new List<IConfigurationSection>
        {
            configuration.GetSection("Orleans:Clustering"),
            configuration.GetSection("Orleans:Reminders"),
        };
        sections.AddRange(configuration.GetSection("Orleans:GrainStorage").GetChildren());
        var found = new List<string>();
        foreach (var section in sections)
        {
            if (section["ProviderType"] is not ("AdoNet" or BatchedGrainStorageRegistration.ProviderType) || section["Invariant"] != Invariant)
            {
                continue;
            }

            var connectionString = section["ConnectionString"] is { Length: > 0 } direct
                ? direct
                : section["ConnectionName"] is { Length: > 0 } name ? configuration.GetConnectionString(name) : null;
            if (connectionString is { Length: > 0 } && !found.Contains(connectionString))
            {
                found.Add(connectionString);
            }
        }

        return found;
    }

    /// <summary>Migrates every database the configuration names; see <see cref="ConfiguredConnectionStrings"/>.</summary>
    public static async Task MigrateConfiguredAsync(IConfiguration configuration, ILogger? logger = null, CancellationToken cancellation = default)
    {
        foreach (var connectionString in ConfiguredConnectionStrings(configuration))
        {
            await MigrateAsync(connectionString, logger, cancellation);
        }
    }

    private static async Task Execute(NpgsqlConnection connection, string sql, CancellationToken cancellation)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellation);
    }

    private static (int, string, string)[] LoadMigrations()
    {
        var assembly = typeof(LedgerSchema).Assembly;
        return assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("Migrations.", StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Select(n =>
            {
                var file = n["Migrations.".Length..^".sql".Length];
                var version = int.Parse(file[..file.IndexOf('_', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
                using var stream = assembly.GetManifestResourceStream(n)!;
                using var reader = new StreamReader(stream);
                return (version, file, reader.ReadToEnd());
            })
            .OrderBy(m => m.version)
            .ToArray();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Applied schema migration {Version} ({Name})")]
    private static partial void LogApplied(ILogger logger, int version, string name);
}
