using Transactor.Api.Http;
using Transactor.Grains;

namespace Transactor.Api.Metrics;

public static class MetricsApi
{
    /// <summary>Paths whose requests count in <c>/metrics</c>: the ledger's own endpoints.</summary>
    private static readonly string[] CountedPrefixes = ["/accounts", "/transfer"];

    /// <summary>Times every ledger request for <see cref="ApiMetrics"/>.</summary>
    public static IApplicationBuilder UseApiMetrics(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var path = context.Request.Path;
        if (!CountedPrefixes.Any(p => path.Value?.StartsWith(p, StringComparison.OrdinalIgnoreCase) == true))
        {
            await next(context);
            return;
        }

        var metrics = context.RequestServices.GetRequiredService<ApiMetrics>();
        var started = metrics.Started();
        try
        {
            await next(context);
        }
        finally
        {
            metrics.Finished(started, context.Response.StatusCode);
        }
    });

    public static IEndpointRouteBuilder MapMetricsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", async (ApiMetrics metrics, IClusterClient client, LedgerAdmission ledgerAdmission, IServiceProvider services) =>
        {
            int? silos = null;
            long? activations = null;
            try
            {
                var management = client.GetGrain<IManagementGrain>(0);
                silos = (await management.GetHosts(onlyActive: true).WaitAsync(TimeSpan.FromSeconds(2))).Count;
                activations = await management.GetTotalActivationCount().WaitAsync(TimeSpan.FromSeconds(2));
            }
            catch (Exception ex) when (ex is TimeoutException or OrleansException)
            {
                // The cluster counts are best effort: the API's own counts are still worth reporting.
            }

            var api = ledgerAdmission.Limiter;
            // Only an embedded silo's admission is in this process; a client's silos export theirs as metrics.
            var silo = services.GetService<TransferAdmission>();
            var admission = new AdmissionSnapshot(
                api.Mode.ToString(), api.Limit, api.InFlight, api.Queued, api.Shed, api.TimedOut,
                silo?.Mode.ToString(), silo?.Places, silo?.Queued, silo?.Shed);
            var chaos = services.GetService<ChaosMonitor>() is { } monitor
                ? new ChaosSnapshot(
                    monitor.Active, monitor.Silo, monitor.Options.DelayProbability, monitor.Options.MaxDelay.TotalMilliseconds, monitor.Options.DropProbability,
                    monitor.Options.StorageWriteFailureProbability, monitor.Options.StorageReadFailureProbability, monitor.Options.Seed,
                    monitor.InjectedByKind.ToDictionary(k => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(k.Key.ToString()), k => k.Value, StringComparer.Ordinal))
                : null;
            return TypedResults.Ok(metrics.Snapshot(silos, activations, admission, chaos));
        }).WithTags("Operations").WithSummary("Request, latency and outcome counters of this API process, and cluster counts (admin key)")
            .RequireAuthorization(Security.Roles.AdminPolicy);
        return app;
    }
}
