using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using Transactor.Api.Events;
using Transactor.Tests.Api;

namespace Transactor.Tests.Events;

/// <summary>Event ids name points in the silos' own streams, so a client resumes on any API instance (docs/events.md).</summary>
[Collection(ApiTestGroup.Name)]
public sealed class EventsAcrossInstancesTests(ApiFixture api)
{
    [Fact]
    public async Task A_client_resumes_on_another_API_instance_with_its_last_event_id_and_loses_nothing()
    {
        await using var second = api.SecondInstance();
        using var here = Authorized(api.Server.CreateClient());
        using var there = Authorized(second.Server.CreateClient());

        // Both instances must be receivers the silo knows before the movements end (it reads the list every 2 s).
        var logs = new[] { api.Services.GetRequiredService<TransferEventLog>(), second.Services.GetRequiredService<TransferEventLog>() };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (logs.Any(log => log.SiloLoads().Count == 0))
        {
            Assert.True(DateTime.UtcNow < deadline, "the silo did not send both API instances its events within 30 s");
            await Task.Delay(50);
        }

        var account = await here.OpenAccount();
        var keys = Enumerable.Range(0, 10).Select(i => $"across-{i}-{Guid.NewGuid():N}").ToArray();
        List<SseEvent> first;
        using (var stream = await Sse.Open(here, $"events/transfers?account={account}"))
        {
            foreach (var key in keys[..4])
            {
                await Deposit(here, account, key);
            }

            first = await stream.Read(4, TimeSpan.FromSeconds(10));
        }

        foreach (var key in keys[4..])
        {
            await Deposit(here, account, key);
        }

        // Disconnected after the 2nd; reconnected to the other instance with the id the first one gave.
        using var resumed = await Sse.Open(there, $"events/transfers?account={account}", lastEventId: first[1].Id);
        var rest = await resumed.Read(8, TimeSpan.FromSeconds(10));
        Assert.All(rest, e => Assert.Equal("transfer", e.Type));
        Assert.Equal(keys[2..], rest.Select(e => e.Data.GetProperty("id").GetString()));
    }

    private static HttpClient Authorized(HttpClient client)
    {
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiFixture.AdminKey);
        return client;
    }

    private static async Task Deposit(HttpClient http, string account, string key)
    {
        using var response = await http.SendAsync(Http.Post($"/accounts/{account}/deposits", """{"amount":100}""", key));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }
}
