using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Transactor.Api.Events;
using Transactor.Tests.Api;

namespace Transactor.Tests.Events;

/// <summary>
/// The API in its embedded mode served by Kestrel on a free loopback port (not the in-memory test
/// server), because a browser and raw sockets connect to it and a stream's back-pressure must be real TCP.
/// </summary>
public class LiveApiFixture : WebApplicationFactory<Program>, IAsyncLifetime
{
    public Uri BaseAddress { get; private set; } = null!;

    public TransferEventLog Events => Services.GetRequiredService<TransferEventLog>();

    public HttpClient Http()
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiFixture.AdminKey);
        return client;
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Transactor:Embedded:SiloPort", ApiFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseSetting("Transactor:Embedded:GatewayPort", ApiFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        builder.UseSetting("Transactor:Auth:AdminKey", ApiFixture.AdminKey);
        foreach (var (key, value) in Settings)
        {
            builder.UseSetting(key, value);
        }
    }

    /// <summary>Settings of this fixture's API beyond the defaults.</summary>
    protected virtual IEnumerable<(string Key, string Value)> Settings => [];

    public async Task InitializeAsync()
    {
        var port = ApiFixture.FreePort();
        UseKestrel(port);
        StartServer();
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");

        // A silo sends only to receivers it knows (it reads them every 2 s): the first batch here says it knows this API.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (Events.SiloLoads().Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "no silo sent this API its events within 30 s");
            await Task.Delay(50);
        }
    }

    Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();
}

[CollectionDefinition(Name)]
public sealed class LiveApiTestGroup : ICollectionFixture<LiveApiFixture>
{
    public const string Name = "live-api";
}

/// <summary>The live API with chaos mode on in its embedded silo, at a rate that disturbs nothing (one grain call in a thousand delayed by at most 1 ms), and the Orleans Dashboard off.</summary>
public sealed class ChaosLiveApiFixture : LiveApiFixture
{
    protected override IEnumerable<(string Key, string Value)> Settings =>
    [
        ("Transactor:Chaos:DelayProbability", "0.001"),
        ("Transactor:Chaos:MaxDelay", "00:00:00.001"),
        ("Transactor:Chaos:Seed", "5"),
        ("Transactor:Dashboard:Enabled", "false"),
    ];
}
