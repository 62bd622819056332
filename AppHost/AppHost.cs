using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Transactor.AppHost;

// The topology scripts/run-cluster.sh starts by hand: PostgreSQL, three silos in one Orleans
// cluster, the API as a client of it, and a load generator started on demand. Configuration keys
// and values match that script's; docs/deploy.md covers Azure.
var builder = DistributedApplication.CreateBuilder(args);

var postgres = builder.AddPostgres("postgres")
    .WithDataVolume();
var database = postgres.AddDatabase("transactordb");

var ledgerStore = new AdoNetProviderConfiguration(database);
// Fixed ids: Aspire's defaults are new on every run, which would orphan the durable state.
var orleans = builder.AddOrleans("orleans")
    .WithClusterId("transactor")
    .WithServiceId("transactor")
    .WithClustering(ledgerStore)
    .WithGrainStorage("ledger", ledgerStore)
    .WithReminders(ledgerStore);

// WithReference(orleans) adds the silo-to-silo and gateway TCP endpoints. The silo project has no
// launch profile, so its HTTP endpoint (health, Orleans Dashboard) is declared here.
var silo = builder.AddProject<Projects.Transactor_Silo>("silo")
    .WithReference(orleans)
    .WithHttpEndpoint()
    .WithHttpHealthCheck("/health")
    .WithUrlForEndpoint("http", _ => new ResourceUrlAnnotation { Url = "/dashboard", DisplayText = "Orleans Dashboard" })
    .WithReplicas(3)
    .WaitFor(database);

if (builder.ExecutionContext.IsPublishMode)
{
    // A container app listens on fixed ports (locally each replica is given its own). Replicas are
    // not published at all: see docs/deploy.md for silos on Azure Container Apps.
    silo.WithEndpoint("orleans-silo", endpoint => endpoint.TargetPort = 11111, createIfNotExists: false)
        .WithEndpoint("orleans-gateway", endpoint => endpoint.TargetPort = 30000, createIfNotExists: false);
}
else
{
    // Silos on one machine reach each other on loopback, as in scripts/run-cluster.sh.
    silo.WithEnvironment("Orleans__Endpoints__AdvertisedIPAddress", "127.0.0.1");
}

var api = builder.AddProject<Projects.Transactor_Api>("api")
    .WithReference(orleans.AsClient())
    .WithExternalHttpEndpoints()
    .WithHttpHealthCheck("/health")
    .WithUrlForEndpoint("http", _ => new ResourceUrlAnnotation { Url = "/scalar", DisplayText = "API reference (Scalar)" })
    .WaitFor(silo);

// Runs once per start from the dashboard, against the API's allocated address; never deployed.
builder.AddProject<Projects.Transactor_LoadGen>("loadgen")
    .WithReference(api)
    .WithArgs("--target", api.GetEndpoint("http"))
    .WaitFor(api)
    .WithExplicitStart()
    .ExcludeFromManifest();

builder.Build().Run();
