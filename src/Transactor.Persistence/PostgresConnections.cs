using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Orleans.Configuration;

namespace Transactor.Persistence;

/// <summary>
/// Connection settings the Orleans ADO.NET providers do well with on PostgreSQL, applied to every
/// Npgsql connection string they are given unless the string sets them itself:
/// <list type="bullet">
/// <item><c>Max Auto Prepare=32</c>, <c>Auto Prepare Min Usages=2</c>: the providers send the same few
/// statements over and over; prepared, the server parses and plans each once per connection.</item>
/// <item><c>No Reset On Close=true</c>: the providers keep no session state, so the six reset statements
/// Npgsql otherwise sends with each pooled connection's next use are pure cost.</item>
/// <item><c>Maximum Pool Size=32</c> per process instead of Npgsql's 100: on a small server, a hundred
/// backends per silo contend for the CPU and the WAL instead of sharing commits.</item>
/// </list>
/// Measured in docs/benchmarks.md (PostgreSQL section).
/// </summary>
public static class PostgresConnections
{
    public const int DefaultMaxPoolSize = 32;
    public const int DefaultMaxAutoPrepare = 32;

    /// <summary>Returns <paramref name="connectionString"/> with the settings above where it does not set them.</summary>
    public static string Tune(string connectionString)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        // Keys lists what the string sets, under Npgsql's canonical names, whatever synonym it used.
        var given = new HashSet<string>(builder.Keys, StringComparer.OrdinalIgnoreCase);
        if (!given.Contains("Max Auto Prepare"))
        {
            builder.MaxAutoPrepare = DefaultMaxAutoPrepare;
            if (!given.Contains("Auto Prepare Min Usages"))
            {
                builder.AutoPrepareMinUsages = 2;
            }
        }

        if (!given.Contains("No Reset On Close"))
        {
            builder.NoResetOnClose = true;
        }

        if (!given.Contains("Maximum Pool Size"))
        {
            builder.MaxPoolSize = DefaultMaxPoolSize;
        }

        return builder.ConnectionString;
    }

    /// <summary>Tunes the connection strings of the ADO.NET grain storage, clustering and reminder providers that use Npgsql.</summary>
    public static IServiceCollection AddPostgresConnectionTuning(this IServiceCollection services)
    {
        services.PostConfigureAll<AdoNetGrainStorageOptions>(o => o.ConnectionString = TuneIfNpgsql(o.Invariant, o.ConnectionString)!);
        services.PostConfigureAll<AdoNetClusteringSiloOptions>(o => o.ConnectionString = TuneIfNpgsql(o.Invariant, o.ConnectionString)!);
        services.PostConfigureAll<AdoNetClusteringClientOptions>(o => o.ConnectionString = TuneIfNpgsql(o.Invariant, o.ConnectionString)!);
        services.PostConfigureAll<AdoNetReminderTableOptions>(o => o.ConnectionString = TuneIfNpgsql(o.Invariant, o.ConnectionString)!);
        return services;
    }

    private static string? TuneIfNpgsql(string? invariant, string? connectionString) =>
        invariant == LedgerSchema.Invariant && !string.IsNullOrEmpty(connectionString) ? Tune(connectionString) : connectionString;
}
