using System.Data.Common;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Transactor.Api.Hosting;

/// <summary>
/// Healthy when the cluster answers: at least one active silo within two seconds. The answer comes
/// from the membership table, so with PostgreSQL clustering a database outage fails it too (a
/// <see cref="DbException"/>).
/// </summary>
public sealed class OrleansHealthCheck(IClusterClient client) : IHealthCheck
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var hosts = await client.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true, CancellationToken.None).WaitAsync(Timeout, cancellationToken);
            return hosts.Count > 0 ? HealthCheckResult.Healthy($"{hosts.Count} active silo(s)") : HealthCheckResult.Unhealthy("No active silo.");
        }
        catch (Exception ex) when (ex is TimeoutException or OrleansException or DbException)
        {
            return HealthCheckResult.Unhealthy("The Orleans cluster did not answer.", ex);
        }
    }
}
