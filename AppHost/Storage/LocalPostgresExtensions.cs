using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Transactor.AppHost.Storage;

internal static class LocalPostgresExtensions
{
    /// <summary>Connections for 3 silos' pools, the API's health checks and a psql or two.</summary>
    private const int MaxConnections = 300;

    /// <summary>
    /// A PostgreSQL server run from <paramref name="binDirectory"/> with its data in
    /// <paramref name="dataRoot"/> (initialised on first run), on a port the orchestrator picks,
    /// stopped with the AppHost. Only for running: a published model uses the container.
    /// </summary>
    public static IResourceBuilder<LocalPostgresServerResource> AddLocalPostgres(
        this IDistributedApplicationBuilder builder, string name, string binDirectory, string dataRoot, string databaseName)
    {
        var (installation, password) = LocalPostgresInstallation.Prepare(binDirectory, dataRoot, databaseName);
        var server = new LocalPostgresServerResource(name, installation, password);
        return builder.AddResource(server)
            .WithArgs([.. installation.ServerArguments(MaxConnections)])
            // PostgreSQL reads its port from PGPORT; the orchestrator chooses it and clients reach it through its proxy.
            .WithEndpoint(scheme: "tcp", name: LocalPostgresServerResource.EndpointName, env: "PGPORT")
            .WithIconName("Database")
            .ExcludeFromManifest();
    }

    /// <summary>
    /// The database the server was initialised with, healthy once it answers a query: what
    /// <c>WaitFor</c> needs, or silos would start before PostgreSQL listens.
    /// </summary>
    public static IResourceBuilder<LocalPostgresDatabaseResource> AddDatabase(
        this IResourceBuilder<LocalPostgresServerResource> server, string name)
    {
        var database = new LocalPostgresDatabaseResource(name, name, server.Resource);
        string? connectionString = null;
        server.ApplicationBuilder.Eventing.Subscribe<ConnectionStringAvailableEvent>(database, async (_, cancellation) =>
            connectionString = await database.ConnectionStringExpression.GetValueAsync(cancellation).ConfigureAwait(false));

        var check = name + "_check";
        server.ApplicationBuilder.Services.AddHealthChecks().AddNpgSql(
            _ => connectionString ?? throw new InvalidOperationException($"The connection string of '{name}' is not known yet."),
            name: check);

        // Aspire passes a container's state on to its databases, not an executable's: done here, so
        // that the database is Running (and then health-checked) while its server runs.
        server.ApplicationBuilder.Eventing.Subscribe<BeforeStartEvent>((@event, cancellation) =>
        {
            var notifications = @event.Services.GetRequiredService<ResourceNotificationService>();
            var stopping = @event.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
            _ = Task.Run(() => FollowServerState(notifications, server.Resource, database, stopping), stopping);
            return Task.CompletedTask;
        });

        return server.ApplicationBuilder.AddResource(database)
            .WithInitialState(new CustomResourceSnapshot { ResourceType = "PostgresDatabase", Properties = [], State = KnownResourceStates.NotStarted })
            .WithHealthCheck(check)
            .ExcludeFromManifest();
    }

    private static async Task FollowServerState(
        ResourceNotificationService notifications, LocalPostgresServerResource server, LocalPostgresDatabaseResource database, CancellationToken cancellation)
    {
        try
        {
            await foreach (var update in notifications.WatchAsync(cancellation).ConfigureAwait(false))
            {
                if (ReferenceEquals(update.Resource, server))
                {
                    await notifications.PublishUpdateAsync(database, snapshot => snapshot with
                    {
                        State = update.Snapshot.State,
                        StartTimeStamp = update.Snapshot.StartTimeStamp,
                        StopTimeStamp = update.Snapshot.StopTimeStamp,
                    }).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            // The AppHost stops.
        }
    }
}
