using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Orleans;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Transactor.AppHost.Storage;

namespace Transactor.AppHost;

/// <summary>The resources of the ledger and how they are wired, in the order AppHost.cs reads.</summary>
internal static partial class Topology
{
    public const string ClusterId = "transactor";
    public const string ServiceId = "transactor";
    public const int SiloCount = 3;

    /// <summary>
    /// The API's port under the AppHost (configuration <see cref="ApiPortKey"/>): not 5080, which
    /// the embedded ledger (<c>dotnet run --project src/Transactor.Api</c>) and scripts/run-cluster.sh take.
    /// </summary>
    public const int DefaultApiPort = 5090;

    public const string ApiPortKey = "Transactor:ApiPort";

    /// <summary>
    /// The API's bootstrap admin key (configuration <c>Transactor:Auth:AdminKey</c>); when not set, a
    /// new one each run, shown in the AppHost's log and given to the API and the load generator.
    /// </summary>
    public const string AdminKeyKey = "Transactor:Auth:AdminKey";

    /// <summary>A new random admin key: 32 random bytes, base64url.</summary>
    public static string NewAdminKey() =>
        "txa." + Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>Transfers in one run of the load generator resource (configuration <see cref="LoadTransfersKey"/>).</summary>
    public const int DefaultLoadTransfers = 20_000;

    public const string LoadTransfersKey = "Transactor:LoadGen:Transfers";

    private const string LocalStopTimeout = "00:00:06";
    private const string LocalExitAfter = "00:00:02";

    /// <summary>The database's name, the same on every path and in the published model.</summary>
    public const string DatabaseName = "transactordb";

    // The ports silo n (from 1) listens on in its container app: 11111 + n - 1 and 30000 + n - 1, as
    // in scripts/run-cluster.sh; Orleans' guidance for Container Apps gives each silo app its own.
    private const int FirstPublishedSiloPort = 11111;
    private const int FirstPublishedGatewayPort = 30000;

    /// <summary>
    /// The ledger's database on the path <paramref name="storage"/> chose, with Orleans' clustering,
    /// grain storage and reminders on it; null for memory, where silos form a development cluster.
    /// </summary>
    public static IResourceBuilder<IResourceWithConnectionString>? AddLedgerDatabase(
        this IDistributedApplicationBuilder builder, LedgerStorageChoice storage, OrleansService orleans)
    {
        IResourceBuilder<IResourceWithConnectionString>? database = storage.Kind switch
        {
            LedgerStorageKind.Container => builder.AddPostgres("postgres").WithDataVolume().AddDatabase(DatabaseName),
            LedgerStorageKind.Local => builder.AddLocalPostgres(
                    "postgres",
                    storage.BinDirectory!,
                    builder.Configuration[LedgerStorage.DataDirectoryKey] is { Length: > 0 } configured ? configured : LocalPostgresInstallation.DefaultDataRoot(),
                    DatabaseName)
                .AddDatabase(DatabaseName),
            LedgerStorageKind.ConnectionString => builder.AddConnectionString(DatabaseName, ReferenceExpression.Create($"{storage.ConnectionString!}")),
            _ => null,
        };

        if (database is null)
        {
            orleans.WithDevelopmentClustering()
                .WithMemoryGrainStorage("ledger")
                .WithMemoryReminders();
            return null;
        }

        var provider = new AdoNetProviderConfiguration(database);
        orleans.WithClustering(provider)
            .WithGrainStorage("ledger", provider)
            .WithReminders(provider);
        return database;
    }

    /// <summary>
    /// One silo: its own resource (so it can be stopped and started alone, and is its own container
    /// app when published), with its health and its Orleans Dashboard.
    /// </summary>
    public static IResourceBuilder<ProjectResource> AddSilo(
        this IDistributedApplicationBuilder builder, int number, OrleansService orleans, IResourceBuilder<IResourceWithConnectionString>? database)
    {
        var name = FormattableString.Invariant($"silo{number}");
        // WithReference(orleans) adds the silo-to-silo and gateway TCP endpoints. The silo project
        // has no launch profile, so its HTTP endpoint (health, Orleans Dashboard) is declared here.
        var silo = builder.AddProject<Projects.Transactor_Silo>(name, launchProfileName: null)
            .WithReference(orleans)
            .WithHttpEndpoint(name: "http")
            .WithHttpHealthCheck("/health")
            .WithUrlForEndpoint("http", _ => new ResourceUrlAnnotation { Url = "/dashboard", DisplayText = "Orleans Dashboard" });
        if (database is not null)
        {
            silo.WaitFor(database);
        }

        if (builder.ExecutionContext.IsPublishMode)
        {
            silo.WithEndpoint("orleans-silo", endpoint => endpoint.TargetPort = FirstPublishedSiloPort + number - 1, createIfNotExists: false)
                .WithEndpoint("orleans-gateway", endpoint => endpoint.TargetPort = FirstPublishedGatewayPort + number - 1, createIfNotExists: false);
        }
        else
        {
            // Silos on one machine reach each other on loopback, as in scripts/run-cluster.sh.
            silo.WithEnvironment("Orleans__Endpoints__AdvertisedIPAddress", "127.0.0.1");

            // The orchestrator reports a stop (the dashboard's ■) as failed when the process still
            // runs about 12 s after it was signalled, and a silo's graceful stop under load can take
            // longer. Bounded here to 6 s of graceful stop plus 2 s before the process exits (as a
            // crash, which the cluster and the transfer protocol recover from).
            silo.WithEnvironment("Transactor__Hosting__StopTimeout", LocalStopTimeout)
                .WithEnvironment("Transactor__Hosting__ExitAfter", LocalExitAfter);
        }

        return silo;
    }

    /// <summary>
    /// Memory only: every silo finds the cluster through the first one's silo port, and the API
    /// knows the gateways from a static list. Those ports are chosen here, free on loopback: the
    /// orchestrator's own choice is known only to the silo it is given to.
    /// </summary>
    public static void FormDevelopmentCluster(IResourceBuilder<ProjectResource>[] silos, IResourceBuilder<ProjectResource> api)
    {
        var chosen = new HashSet<int>();
        var ports = silos.Select(_ => (Silo: FreeLoopbackPort(chosen), Gateway: FreeLoopbackPort(chosen))).ToArray();
        for (var i = 0; i < silos.Length; i++)
        {
            var (siloPort, gatewayPort) = ports[i];
            silos[i].WithEndpoint("orleans-silo", endpoint => endpoint.TargetPort = siloPort, createIfNotExists: false)
                .WithEndpoint("orleans-gateway", endpoint => endpoint.TargetPort = gatewayPort, createIfNotExists: false)
                .WithEnvironment("Orleans__Clustering__PrimarySiloEndPoint", FormattableString.Invariant($"127.0.0.1:{ports[0].Silo}"));
            api.WithEnvironment($"Orleans__Clustering__Gateways__{i}", FormattableString.Invariant($"127.0.0.1:{gatewayPort}"));
            if (i > 0)
            {
                silos[i].WaitFor(silos[0]);
            }
        }
    }

    /// <summary>
    /// A port free on loopback now, below every common ephemeral range (Linux 32768-60999, Windows
    /// and macOS 49152-65535). A port the system handed out for port 0 would itself be ephemeral: the
    /// silos bind theirs only once the first silo is healthy, seconds later, and meanwhile any
    /// outgoing connection on the machine may be given the same port, and the silo then refuses to
    /// start (its port is taken). Ports below that range are never given to outgoing connections.
    /// </summary>
    private static int FreeLoopbackPort(HashSet<int> chosen)
    {
        // Clear of the fault suite's fixed ports too (docs/reliability.md: 21111-21113, 25432).
        const int first = 26_000, last = 29_999;
        var start = Random.Shared.Next(first, last + 1);
        for (var i = 0; i <= last - first; i++)
        {
            var port = first + ((start - first + i) % (last - first + 1));
            if (chosen.Contains(port))
            {
                continue;
            }

            try
            {
                using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
                listener.Start();
                chosen.Add(port);
                return port;
            }
            catch (System.Net.Sockets.SocketException)
            {
                // Taken: the next one.
            }
        }

        throw new InvalidOperationException($"No free loopback port from {first} to {last} for the development cluster.");
    }

    /// <summary>Says in the AppHost's log, and in each silo's console in the dashboard, which storage was chosen and why.</summary>
    public static void AnnounceAtStart(this IDistributedApplicationBuilder builder, string? certificateNotice, LedgerStorageChoice storage)
    {
        var description = Describe(storage.Kind);
        void AnnounceStorage(ILogger logger)
        {
            if (storage.Kind == LedgerStorageKind.Memory)
            {
                LogMemory(logger, storage.Reason);
            }
            else
            {
                LogStorage(logger, description, storage.Reason);
            }
        }

        builder.Eventing.Subscribe<BeforeStartEvent>((@event, _) =>
        {
            var logger = @event.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Transactor.AppHost");
            if (certificateNotice is not null)
            {
                LogCertificate(logger, certificateNotice);
            }

            AnnounceStorage(logger);

            return Task.CompletedTask;
        });

        builder.Eventing.Subscribe<BeforeResourceStartedEvent>((@event, _) =>
        {
            if (@event.Resource is ProjectResource { Name: var name } && name.StartsWith("silo", StringComparison.Ordinal))
            {
                AnnounceStorage(@event.Services.GetRequiredService<ResourceLoggerService>().GetLogger(@event.Resource));
            }

            return Task.CompletedTask;
        });
    }

    private static string Describe(LedgerStorageKind kind) => kind switch
    {
        LedgerStorageKind.Container => "PostgreSQL in a container",
        LedgerStorageKind.Local => "a local PostgreSQL server started by the AppHost",
        LedgerStorageKind.ConnectionString => "the PostgreSQL server named by a connection string",
        _ => kind.ToString(),
    };

    [LoggerMessage(Level = LogLevel.Information, Message = "Ledger storage: {Storage} ({Reason})")]
    private static partial void LogStorage(ILogger logger, string storage, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ledger storage: IN MEMORY ({Reason}). Every account and transfer is lost when a silo stops. For a durable ledger, install PostgreSQL or start a container runtime and run without --storage memory.")]
    private static partial void LogMemory(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Notice}")]
    private static partial void LogCertificate(ILogger logger, string notice);
}

/// <summary>The AppHost's own command-line shorthands.</summary>
internal static class AppHostArguments
{
    /// <summary><c>--storage X</c> and <c>--storage=X</c> become <c>--Transactor:Postgres=X</c>.</summary>
    public static string[] Expand(string[] args)
    {
        var expanded = new List<string>(args.Length);
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == LedgerStorage.Switch && i + 1 < args.Length)
            {
                expanded.Add($"--{LedgerStorage.Key}={args[++i]}");
            }
            else if (args[i].StartsWith(LedgerStorage.Switch + "=", StringComparison.Ordinal))
            {
                expanded.Add($"--{LedgerStorage.Key}={args[i][(LedgerStorage.Switch.Length + 1)..]}");
            }
            else
            {
                expanded.Add(args[i]);
            }
        }

        return [.. expanded];
    }
}
