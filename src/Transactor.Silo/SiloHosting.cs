using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Dashboard;
using Transactor.Grains;
using Transactor.Persistence;
using Transactor.ServiceDefaults;

namespace Transactor.Silo;

internal static class SiloHosting
{
    /// <summary>
    /// An Orleans silo with Transactor's grains and the Orleans Dashboard. Clustering, storage and
    /// reminders come from the <c>Orleans</c> configuration section (as Aspire and
    /// scripts/run-cluster.sh set it); without it the silo runs alone on localhost, in memory.
    /// </summary>
    public static WebApplicationBuilder AddLedgerSilo(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        builder.Services.AddPostgresConnectionTuning();
        builder.Services.AddPostgresExceptionSerialization();
        builder.UseOrleans(silo =>
        {
            if (configuration["Orleans:Clustering:ProviderType"] is not { Length: > 0 })
            {
                // Alone on localhost, still on the ports the configuration names.
                silo.UseLocalhostClustering(
                    configuration.GetValue("Orleans:Endpoints:SiloPort", EndpointOptions.DEFAULT_SILO_PORT),
                    configuration.GetValue("Orleans:Endpoints:GatewayPort", EndpointOptions.DEFAULT_GATEWAY_PORT));
            }

            silo.AddTransactorSilo(configuration);
            silo.AddChaosFaultsIfConfigured(configuration);
            if (DashboardAccess.Enabled(configuration))
            {
                silo.AddDashboard();
            }
            if (ServiceDefaultsExtensions.TracingEnabled(configuration))
            {
                // Carries spans across grain calls; a filter on every call, so only when spans are exported.
                silo.AddActivityPropagation();
            }
        });
        return builder;
    }

    public static WebApplicationBuilder AddSiloHealthChecks(this WebApplicationBuilder builder)
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), ["live"])
            .AddCheck<SiloActiveHealthCheck>("silo", tags: ["ready"])
            .AddPostgresReadiness(builder.Configuration, "ready");
        return builder;
    }
}

/// <summary>Healthy when this silo's own entry in the membership view says Active.</summary>
internal sealed class SiloActiveHealthCheck(IClusterMembershipService membership, ILocalSiloDetails silo) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var status = membership.CurrentSnapshot.GetSiloStatus(silo.SiloAddress);
        return Task.FromResult(status == SiloStatus.Active
            ? HealthCheckResult.Healthy($"Silo {silo.SiloAddress} is active.")
            : HealthCheckResult.Unhealthy($"Silo {silo.SiloAddress} is {status}."));
    }
}
