using System.Diagnostics;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Transactor.Tests.AppHost;

/// <summary>
/// The AppHost's whole topology started through Aspire.Hosting.Testing, as `dotnet run --project
/// AppHost` starts it but with its dashboard off and its ports chosen at random.
/// </summary>
internal sealed class AspireTopology : IAsyncDisposable
{
    /// <summary>Start to all-healthy took 40-90 s on the 2-core machine, more while other tests run.</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(5);

    private readonly DistributedApplication _app;
    private readonly string? _dataRoot;

    private AspireTopology(DistributedApplication app, string? dataRoot, TimeSpan startedIn)
    {
        _app = app;
        _dataRoot = dataRoot;
        StartedIn = startedIn;
    }

    /// <summary>From the start of the build to every resource healthy.</summary>
    public TimeSpan StartedIn { get; }

    public static readonly string[] Silos = ["silo1", "silo2", "silo3"];

    /// <summary>
    /// Starts the topology with <paramref name="args"/>; on the local-PostgreSQL path, in a data
    /// directory of its own (given to the AppHost, removed at the end).
    /// </summary>
    public static async Task<AspireTopology> StartAsync(bool localPostgres, IEnumerable<string> args, CancellationToken cancellation)
    {
        var clock = Stopwatch.StartNew();
        string? dataRoot = null;
        var all = new List<string>(args) { $"--Transactor:Auth:AdminKey={Transactor.Tests.Api.ApiFixture.AdminKey}" };
        if (localPostgres)
        {
            dataRoot = CreateDataRoot();
            all.Add("--Transactor:Postgres=local");
            all.Add($"--Transactor:PostgresDataDirectory={dataRoot}");
        }

        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Transactor.AppHost.Program>([.. all], cancellation);
        var app = await builder.BuildAsync(cancellation);
        using var startTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        startTimeout.CancelAfter(StartTimeout);
        try
        {
            await app.StartAsync(startTimeout.Token);
            foreach (var name in ResourcesThatRun(localPostgres))
            {
                await app.ResourceNotifications.WaitForResourceHealthyAsync(name, startTimeout.Token);
            }
        }
        catch (OperationCanceledException) when (startTimeout.IsCancellationRequested && !cancellation.IsCancellationRequested)
        {
            var states = string.Join(", ", app.Services.GetRequiredService<DistributedApplicationModel>().Resources.Select(resource =>
                app.ResourceNotifications.TryGetCurrentState(resource.Name, out var current)
                    ? $"{resource.Name}: {current.Snapshot.State?.Text} {current.Snapshot.HealthStatus}"
                    : $"{resource.Name}: no state"));
            await app.DisposeAsync();
            throw new TimeoutException($"The topology was not healthy within {StartTimeout.TotalMinutes} minutes: {states}");
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        return new AspireTopology(app, dataRoot, clock.Elapsed);
    }

    /// <summary>A fresh data folder for the local PostgreSQL server, so the first run's initdb is tested too.</summary>
    public static string CreateDataRoot()
    {
        // The server runs as the postgres user when the tests run as root: it must be able to enter the folder.
        var dataRoot = Path.Combine(Path.GetTempPath(), $"transactor-apphost-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dataRoot);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(dataRoot, (UnixFileMode)0b111_101_101);
        }

        return dataRoot;
    }

    /// <summary>Removes a folder made by <see cref="CreateDataRoot"/>, as far as it can.</summary>
    public static void DeleteDataRoot(string dataRoot)
    {
        try
        {
            Directory.Delete(dataRoot, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A server still stopping may hold a file, and files it made may be its own; /tmp is cleared in time.
        }
    }

    public static IEnumerable<string> ResourcesThatRun(bool localPostgres) =>
        localPostgres ? ["postgres", "transactordb", .. Silos, "api"] : [.. Silos, "api"];

    /// <summary>A client of the API with the admin key the topology was started with.</summary>
    public HttpClient CreateApiClient()
    {
        var client = _app.CreateHttpClient("api", "http");
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Transactor.Tests.Api.ApiFixture.AdminKey);
        return client;
    }

    public IResource Resource(string name) =>
        _app.Services.GetRequiredService<DistributedApplicationModel>().Resources.Single(resource => resource.Name == name);

    public async Task ExecuteAsync(string resource, string command, CancellationToken cancellation)
    {
        var result = await _app.ResourceCommands.ExecuteCommandAsync(Resource(resource), command, cancellation);
        Assert.True(result.Success, $"{command} {resource}: {result.Message}");
    }

    public Task<ResourceEvent> WaitForStateAsync(string resource, IReadOnlyCollection<string> states, CancellationToken cancellation) =>
        _app.ResourceNotifications.WaitForResourceAsync(resource, update => update.Snapshot.State?.Text is { } state && states.Contains(state), cancellation);

    public Task<ResourceEvent> WaitForHealthyAsync(string resource, CancellationToken cancellation) =>
        _app.ResourceNotifications.WaitForResourceHealthyAsync(resource, cancellation);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        if (_dataRoot is not null)
        {
            DeleteDataRoot(_dataRoot);
        }
    }
}
