using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Orleans.Serialization;

namespace Transactor.Persistence;

/// <summary>
/// Healthy when every PostgreSQL database the <c>Orleans</c> section names answers <c>SELECT 1</c>
/// within <see cref="Timeout"/>: a process whose database is down can accept requests but not
/// complete them, so it is not ready (it stays alive: nothing in it needs a restart).
/// </summary>
public sealed class PostgresHealthCheck(IConfiguration configuration) : IHealthCheck
{
    public const string Name = "postgres";

    /// <summary>How long a check waits for the database, to connect and to answer.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        foreach (var connectionString in LedgerSchema.ConfiguredConnectionStrings(configuration))
        {
            // A pool of its own, so a check never waits behind the providers' queries for a connection.
            var builder = new NpgsqlConnectionStringBuilder(connectionString)
            {
                Timeout = (int)Timeout.TotalSeconds,
                CommandTimeout = (int)Timeout.TotalSeconds,
                MaxPoolSize = 1,
                ApplicationName = "transactor-health",
            };
            try
            {
                await using var connection = new NpgsqlConnection(builder.ConnectionString);
                await connection.OpenAsync(cancellationToken);
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                await command.ExecuteScalarAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
            {
                return HealthCheckResult.Unhealthy($"PostgreSQL at {builder.Host}:{builder.Port} (database {builder.Database}) does not answer: {ex.Message}", ex);
            }
        }

        return HealthCheckResult.Healthy();
    }
}

public static class PostgresHealth
{
    /// <summary>
    /// A readiness check of the configured PostgreSQL databases (<see cref="PostgresHealthCheck"/>),
    /// when the <c>Orleans</c> section names any.
    /// </summary>
    public static IHealthChecksBuilder AddPostgresReadiness(this IHealthChecksBuilder checks, IConfiguration configuration, params string[] tags)
    {
        ArgumentNullException.ThrowIfNull(checks);
        ArgumentNullException.ThrowIfNull(configuration);
        return LedgerSchema.ConfiguredConnectionStrings(configuration).Count > 0
            ? checks.AddCheck<PostgresHealthCheck>(PostgresHealthCheck.Name, tags: tags)
            : checks;
    }

    /// <summary>
    /// Lets Npgsql's exceptions cross grain calls, with their message and inner exceptions. Orleans
    /// serializes exceptions of unknown types only from the namespaces it is told to trust (by default
    /// <c>System</c>, <c>Microsoft</c>, <c>Azure</c>); without <c>Npgsql</c> among them, a storage
    /// provider's failure reached the caller as a <c>CodecNotFoundException</c> for
    /// <c>NpgsqlException</c>, and the database's real error was lost. The caller gets the exception's
    /// type, message, stack and inner exceptions; type-specific fields (such as a
    /// <c>PostgresException</c>'s SQL state) are not carried. Both silos and clients need it.
    /// </summary>
    public static IServiceCollection AddPostgresExceptionSerialization(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.Configure<ExceptionSerializationOptions>(o => o.SupportedNamespacePrefixes.Add(nameof(Npgsql)));
        return services;
    }
}
