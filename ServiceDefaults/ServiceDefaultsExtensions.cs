using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Transactor.ServiceDefaults;

/// <summary>Which of the default health endpoints <see cref="ServiceDefaultsExtensions.MapDefaultEndpoints"/> maps.</summary>
[Flags]
public enum DefaultEndpoints
{
    /// <summary>Neither: the service maps its own.</summary>
    None = 0,

    /// <summary><c>/health</c>: every registered check must pass (readiness).</summary>
    Health = 1,

    /// <summary><c>/alive</c>: only the checks tagged <c>live</c> (liveness).</summary>
    Alive = 2,

    /// <summary>Both <c>/health</c> and <c>/alive</c>.</summary>
    HealthAndAlive = Health | Alive,
}

/// <summary>
/// What every Transactor service shares: OpenTelemetry (logs, metrics, traces), default health
/// checks, service discovery and resilient HttpClients. The Aspire AppHost relies on it; it works
/// the same without Aspire.
/// </summary>
public static class ServiceDefaultsExtensions
{
    public const string HealthPath = "/health";
    public const string AlivePath = "/alive";
    public const string PrometheusPath = "/metrics/prometheus";
    public const string LiveTag = "live";
    public const string SelfCheckName = "self";

    /// <summary><c>true</c> serves metrics in Prometheus text format at <see cref="PrometheusPath"/>.</summary>
    public const string PrometheusKey = "Transactor:Telemetry:Prometheus";

    /// <summary><c>true</c> writes traces and metrics to standard output.</summary>
    public const string ConsoleKey = "Transactor:Telemetry:Console";

    /// <summary>Set by Aspire (and by anyone running a collector); without it nothing is exported over OTLP.</summary>
    public const string OtlpEndpointKey = "OTEL_EXPORTER_OTLP_ENDPOINT";

    // Must equal Transactor.Grains.TransactorInstruments.MeterName; repeated here so this project
    // stays free of Orleans and of Transactor's own assemblies.
    private const string TransactorMeter = "Transactor";
    private const string OrleansMeter = "Microsoft.Orleans";
    private static readonly string[] s_orleansActivitySources = ["Microsoft.Orleans.Runtime", "Microsoft.Orleans.Application"];

    /// <summary>Telemetry, health checks, service discovery and HttpClient resilience.</summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();

        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
        });
        return builder;
    }

    /// <summary>
    /// Logs, metrics (ASP.NET Core, HttpClient, runtime, Orleans, Transactor, Npgsql) and traces
    /// (ASP.NET Core, HttpClient, Npgsql, Orleans; without the runtime's background traces, see
    /// <see cref="BackgroundSpanFilter"/>), exported over OTLP when
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, and to Prometheus or the console when
    /// <see cref="PrometheusKey"/> or <see cref="ConsoleKey"/> is <c>true</c>. Traces are recorded
    /// only when there is an exporter for them (OTLP or the console).
    /// </summary>
    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        var configuration = builder.Configuration;
        var prometheus = configuration.GetValue(PrometheusKey, defaultValue: false);
        var console = configuration.GetValue(ConsoleKey, defaultValue: false);

        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        var telemetry = builder.Services.AddOpenTelemetry();

        // Aspire names each resource through OTEL_SERVICE_NAME; naming it here too would override that.
        if (string.IsNullOrWhiteSpace(configuration["OTEL_SERVICE_NAME"]))
        {
            telemetry.ConfigureResource(resource => resource.AddService(builder.Environment.ApplicationName));
        }

        telemetry
            .WithMetrics(metrics =>
            {
                metrics
                    .AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation()
                    .AddNpgsqlInstrumentation()
                    .AddMeter(OrleansMeter, TransactorMeter);
                if (prometheus)
                {
                    metrics.AddPrometheusExporter();
                }

                if (console)
                {
                    metrics.AddConsoleExporter();
                }
            });

        // Spans cost on every request and every grain call; with nowhere to send them they are pure cost.
        var otlp = !string.IsNullOrWhiteSpace(configuration[OtlpEndpointKey]);
        if (TracingEnabled(configuration))
        {
            telemetry.WithTracing(tracing =>
            {
                tracing
                    .AddAspNetCoreInstrumentation(aspNetCore => aspNetCore.Filter = context => !IsProbe(context.Request.Path))
                    .AddHttpClientInstrumentation()
                    .AddNpgsql()
                    .AddSource(s_orleansActivitySources)
                    .AddProcessor(new BackgroundSpanFilter());
                if (console)
                {
                    tracing.AddConsoleExporter();
                }
            });
        }

        if (otlp)
        {
            telemetry.UseOtlpExporter();
        }

        return builder;
    }

    /// <summary>
    /// True when spans have somewhere to go (OTLP or the console). Hosts ask it before they add
    /// per-call tracing of their own, such as Orleans' activity propagation on every grain call.
    /// </summary>
    public static bool TracingEnabled(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return !string.IsNullOrWhiteSpace(configuration[OtlpEndpointKey]) || configuration.GetValue(ConsoleKey, defaultValue: false);
    }

    /// <summary>
    /// A <c>self</c> check tagged <c>live</c>, unless the service registers one of that name itself
    /// (health check names must be unique, or the health check service fails to start).
    /// </summary>
    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddHealthChecks();

        // PostConfigure runs after every AddCheck of the service, whatever the order of the calls.
        builder.Services.PostConfigure<HealthCheckServiceOptions>(options =>
        {
            if (!options.Registrations.Any(registration => registration.Name == SelfCheckName))
            {
                options.Registrations.Add(new HealthCheckRegistration(SelfCheckName, _ => AliveHealthCheck.Instance, failureStatus: null, tags: [LiveTag]));
            }
        });
        return builder;
    }

    /// <summary>
    /// Maps <c>/health</c> (all checks) and <c>/alive</c> (checks tagged <c>live</c>) in every
    /// environment, as a deployment's probes need them, and the Prometheus scrape endpoint when it is
    /// switched on. A service that maps a health endpoint itself passes only the others in
    /// <paramref name="endpoints"/>: mapping one path twice makes every request to it fail.
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app, DefaultEndpoints endpoints = DefaultEndpoints.HealthAndAlive)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (endpoints.HasFlag(DefaultEndpoints.Health))
        {
            app.MapHealthChecks(HealthPath);
        }

        if (endpoints.HasFlag(DefaultEndpoints.Alive))
        {
            app.MapHealthChecks(AlivePath, new HealthCheckOptions { Predicate = check => check.Tags.Contains(LiveTag) });
        }

        if (app.Configuration.GetValue(PrometheusKey, defaultValue: false))
        {
            app.MapPrometheusScrapingEndpoint(PrometheusPath);
        }

        return app;
    }

    private static bool IsProbe(PathString path) =>
        path.StartsWithSegments(HealthPath) || path.StartsWithSegments(AlivePath) || path.StartsWithSegments(PrometheusPath);

    private sealed class AliveHealthCheck : IHealthCheck
    {
        public static readonly AliveHealthCheck Instance = new();

        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(HealthCheckResult.Healthy("The process runs."));
    }
}
