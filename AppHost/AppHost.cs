using System.Globalization;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Transactor.AppHost.Storage;

namespace Transactor.AppHost;

/// <summary>
/// The topology scripts/run-cluster.sh starts by hand: PostgreSQL, three silos in one Orleans
/// cluster, the API as a client of it, and a load generator started on demand. docs/deploy.md
/// covers what this gives on Azure.
/// </summary>
/// <remarks>Named, not top-level: a test project that references both the AppHost and the API would see two global <c>Program</c>s.</remarks>
public sealed class Program
{
    private Program()
    {
    }

    public static void Main(string[] args)
    {
        var certificateNotice = DevelopmentCertificate.FallBackToHttpIfUntrusted();
        var builder = DistributedApplication.CreateBuilder(AppHostArguments.Expand(args));
        var storage = LedgerStorage.Choose(builder.Configuration, builder.ExecutionContext.IsPublishMode);
        builder.AnnounceAtStart(certificateNotice, storage);

        var orleans = builder.AddOrleans("orleans")
            // Fixed ids: Aspire's defaults are new on every run, which would orphan the durable state.
            .WithClusterId(Topology.ClusterId)
            .WithServiceId(Topology.ServiceId);
        var database = builder.AddLedgerDatabase(storage, orleans);

        var silos = Enumerable.Range(1, Topology.SiloCount)
            .Select(number => builder.AddSilo(number, orleans, database))
            .ToArray();
        // A secret parameter: prompted for (or taken from azd's configuration) when deployed; made up each run locally.
        var adminKey = builder.ExecutionContext.IsPublishMode
            ? builder.AddParameter("api-admin-key", secret: true)
            : builder.AddParameter("api-admin-key", builder.Configuration[Topology.AdminKeyKey] ?? Topology.NewAdminKey(), secret: true);
        var api = builder.AddProject<Projects.Transactor_Api>("api", launchProfileName: null)
            .WithReference(orleans.AsClient())
            .WithEnvironment("Transactor__Auth__AdminKey", adminKey)
            .WithHttpEndpoint(port: builder.ExecutionContext.IsPublishMode ? null : builder.Configuration.GetValue(Topology.ApiPortKey, Topology.DefaultApiPort), name: "http")
            .WithExternalHttpEndpoints()
            .WithHttpHealthCheck("/health")
            .WithUrlForEndpoint("http", _ => new ResourceUrlAnnotation { Url = "/scalar", DisplayText = "API reference (Scalar)" })
            .WithUrlForEndpoint("http", _ => new ResourceUrlAnnotation { Url = "/", DisplayText = "Ledger dashboard" });
        if (builder.ExecutionContext.IsRunMode)
        {
            // A local run publishes the API reference; a deployment keeps it for admin keys (docs/security.md).
            api.WithEnvironment("Transactor__Auth__PublicDocs", "true");
        }
        foreach (var silo in silos)
        {
            api.WaitFor(silo);
        }

        if (storage.Kind == LedgerStorageKind.Memory)
        {
            Topology.FormDevelopmentCluster(silos, api);
        }

        // A bounded run, started from the dashboard's ▶ button (again and again); never deployed.
        builder.AddProject<Projects.Transactor_LoadGen>("loadgen", launchProfileName: null)
            .WithArgs("--target", api.GetEndpoint("http"), "--clients", "32", "--accounts", "1000", "--quiet",
                "--transfers", builder.Configuration.GetValue(Topology.LoadTransfersKey, Topology.DefaultLoadTransfers).ToString(CultureInfo.InvariantCulture))
            .WithEnvironment("TRANSACTOR_API_KEY", adminKey)
            .WithReference(api)
            .WaitFor(api)
            .WithExplicitStart()
            .ExcludeFromManifest();

        builder.Build().Run();
    }
}
