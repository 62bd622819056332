using Orleans.Configuration;
using Orleans.Dashboard;
using Transactor.Grains;
using Transactor.Persistence;
using Transactor.ServiceDefaults;

namespace Transactor.Api.Hosting;

/// <summary>How the API reaches the ledger's grains.</summary>
public enum LedgerMode
{
    /// <summary>An in-process silo with localhost clustering: a complete single-process ledger.</summary>
    Embedded,

    /// <summary>A client of the silos named by the <c>Orleans</c> configuration section.</summary>
    Client,
}

/// <summary>Settings of the embedded ledger (configuration section <c>Transactor:Embedded</c>).</summary>
public sealed class EmbeddedLedgerOptions
{
    public const string SectionName = "Transactor:Embedded";

    public int SiloPort { get; set; } = 11111;

    public int GatewayPort { get; set; } = 30000;
}

public static partial class OrleansHosting
{
    /// <summary>
    /// How long the API's client waits for a gateway to finish the connection handshake (Orleans'
    /// default is 5 s). A silo that restarts accepts connections before it can answer them; the
    /// client then waited out the full 5 s before its next try, and a restarted cluster served that
    /// much later (docs/reliability.md, "Full restart"). A handshake on a local network takes
    /// milliseconds; a slower one is retried a second later. Liveness only.
    /// </summary>
    internal static readonly TimeSpan GatewayConnectTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How often the API's client reads the gateway list from the membership table (Orleans'
    /// default is 1 min). A gateway the client could not reach is left out until the next read,
    /// so after a restart the client spreads its calls over every silo within this period instead
    /// of a minute. One small read per API instance.
    /// </summary>
    internal static readonly TimeSpan GatewayListRefreshPeriod = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often the API's client asks its gateway whether the cluster's grain types changed (Orleans'
    /// default is 1 min), which also bounds the client's wait before it asks again after a failed
    /// try (at most 5 s). A client started beside a restarting cluster failed its first try and
    /// started serving 5 s after its gateway could answer. One small call per API instance.
    /// </summary>
    internal static readonly TimeSpan ManifestRefreshInterval = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Runs the API as a pure Orleans client when Orleans clustering is configured (the
    /// <c>Orleans:Clustering</c> section, as Aspire or scripts/run-cluster.sh set it), else with an
    /// embedded silo. Same binaries; configuration decides.
    /// </summary>
    public static LedgerMode AddLedger(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var configuration = builder.Configuration;
        builder.Services.AddPostgresConnectionTuning();
        builder.Services.AddPostgresExceptionSerialization();
        builder.Services.AddSingleton<GatewayLoss>();
        // A silo in chaos mode fails storage with this exception; the API must read it to answer 503.
        builder.Services.AddChaosExceptionSerialization();
        if (configuration["Orleans:Clustering:ProviderType"] is { Length: > 0 })
        {
            builder.UseOrleansClient(client =>
            {
                client.Services.AddSingleton<IClusterConnectionStatusObserver>(sp => sp.GetRequiredService<GatewayLoss>());
                client.Configure<ConnectionOptions>(options => options.OpenConnectionTimeout = GatewayConnectTimeout);
                client.Configure<GatewayOptions>(options => options.GatewayListRefreshPeriod = GatewayListRefreshPeriod);
                client.Configure<TypeManagementOptions>(options => options.TypeMapRefreshInterval = ManifestRefreshInterval);
                // 5 s unless configured; the calls that write or wait on purpose keep 30 s (FailureDetectionOptions.ClientResponseTimeout).
                var detection = configuration.GetSection(FailureDetectionOptions.SectionName).Get<FailureDetectionOptions>() ?? new FailureDetectionOptions();
                if (!detection.ClientResponseTimeoutInRange)
                {
                    throw new InvalidOperationException($"{FailureDetectionOptions.SectionName}:ClientResponseTimeout must be between {FailureDetectionOptions.MinResponseTimeout.TotalSeconds} s and {FailureDetectionOptions.MaxResponseTimeout.TotalSeconds} s.");
                }

                client.Configure<ClientMessagingOptions>(options => options.ResponseTimeout = detection.ClientResponseTimeout);
                // Carries spans across grain calls; a filter on every call, so only when spans are exported.
                if (ServiceDefaultsExtensions.TracingEnabled(configuration))
                {
                    client.AddActivityPropagation();
                }

                if (DashboardAccess.Enabled(configuration))
                {
                    client.AddDashboard();
                }
            });
            return LedgerMode.Client;
        }

        var embedded = configuration.GetSection(EmbeddedLedgerOptions.SectionName).Get<EmbeddedLedgerOptions>() ?? new EmbeddedLedgerOptions();
        builder.UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(embedded.SiloPort, embedded.GatewayPort);
            silo.AddTransactorSilo(configuration);
            silo.AddChaosFaultsIfConfigured(configuration);
            if (DashboardAccess.Enabled(configuration))
            {
                silo.AddDashboard();
            }
            if (ServiceDefaultsExtensions.TracingEnabled(configuration))
            {
                silo.AddActivityPropagation();
            }
        });
        return LedgerMode.Embedded;
    }

    /// <summary>Says on start-up where the ledger is and, when embedded, that its state is not durable.</summary>
    public static void AnnounceLedger(this WebApplication app, LedgerMode mode)
    {
        ArgumentNullException.ThrowIfNull(app);
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Transactor");
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var urls = app.Urls.Count > 0 ? app.Urls.ToArray() : ["(none)"];
            foreach (var url in urls)
            {
                var root = url.TrimEnd('/');
                var docs = root + "/scalar";
                var dashboard = root + "/dashboard";
                LogUrls(logger, url, docs, dashboard);
            }

            if (mode == LedgerMode.Embedded)
            {
                LogEmbedded(logger);
            }
            else
            {
                LogClient(logger, app.Configuration["Orleans:ClusterId"] ?? "(default)");
            }
        });
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Transactor API: {ApiUrl}  interactive docs: {DocsUrl}  Orleans Dashboard: {DashboardUrl}")]
    private static partial void LogUrls(ILogger logger, string apiUrl, string docsUrl, string dashboardUrl);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded single-process ledger with IN-MEMORY storage: every account and transfer is lost when this process stops. "
        + "For durable state on PostgreSQL, set Orleans:Clustering, Orleans:GrainStorage:ledger and Orleans:Reminders (see README: 'Configuration').")]
    private static partial void LogEmbedded(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Transactor API is a client of Orleans cluster {ClusterId}")]
    private static partial void LogClient(ILogger logger, string clusterId);
}
