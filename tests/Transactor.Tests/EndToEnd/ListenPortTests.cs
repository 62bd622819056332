using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using Transactor.Tests.Api;

namespace Transactor.Tests.EndToEnd;

/// <summary>
/// A silo refuses to start on a silo or gateway port another process listens on, and says which:
/// Orleans' listener shares a port with another listener (SO_REUSEPORT on Linux), and connections
/// were then split between two processes.
/// </summary>
[Collection(ApiTestGroup.Name)]
public sealed class ListenPortTests(ApiFixture api)
{
    [Fact]
    public void The_embedded_ledger_refuses_a_silo_port_that_is_taken_and_names_it()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        using var factory = api.WithWebHostBuilder(builder =>
            builder.UseSetting("Transactor:Embedded:SiloPort", port.ToString(CultureInfo.InvariantCulture)));

        var failure = Record.Exception(() => factory.CreateClient());

        Assert.NotNull(failure);
        var messages = string.Join(" | ", Chain(failure));
        Assert.True(messages.Contains($"silo port {port}", StringComparison.Ordinal), $"The failure does not name silo port {port}: {messages}");
    }

    [Fact]
    public async Task A_silo_process_refuses_a_gateway_port_that_is_taken_and_names_it()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        await using var silo = ProcessHost.Start("Transactor.Silo", new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{ApiFixture.FreePort()}",
            ["Orleans__Endpoints__AdvertisedIPAddress"] = "127.0.0.1",
            ["Orleans__Endpoints__SiloPort"] = ApiFixture.FreePort().ToString(CultureInfo.InvariantCulture),
            ["Orleans__Endpoints__GatewayPort"] = port.ToString(CultureInfo.InvariantCulture),
        });

        var exit = await silo.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.True(exit is not null and not 0, $"The silo did not fail (exit {exit?.ToString(CultureInfo.InvariantCulture) ?? "none, still running"}):\n{silo.Output}");
        Assert.Contains($"gateway port {port}", silo.Output, StringComparison.Ordinal);
    }

    private static IEnumerable<string> Chain(Exception exception)
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            yield return $"{e.GetType().Name}: {e.Message}";
        }
    }
}
