using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;
using Transactor.Grains;

namespace Transactor.Tests.Api;

/// <summary>
/// The API's Orleans client waits <c>Transactor:FailureDetection:ClientResponseTimeout</c> for a
/// read and gives up with a 503 that changed nothing, but waits for a write to storage as long as
/// storage takes (docs/reliability.md, "Full restart"): an API answering 503 for an account it did
/// open would be wrong. A second API instance, a client of an embedded silo whose account rows the
/// test holds, with a 1-s client timeout.
/// </summary>
[Collection(ApiTestGroup.Name)]
public sealed class ClientResponseTimeoutTests(ApiFixture api)
{
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task A_read_that_storage_holds_past_the_client_timeout_answers_503_with_Retry_After()
    {
        var rows = new HeldAccountRows();
        await using var ledger = LedgerWith(rows, out var gatewayPort);
        await using var client = ClientOf(ledger, gatewayPort);
        using var http = client.CreateClient();
        var id = $"held-read-{Guid.NewGuid():N}";
        var held = rows.HoldRead(id);

        using (var read = await http.GetAsync(new Uri($"/accounts/{id}", UriKind.Relative)))
        {
            await read.AssertProblem(HttpStatusCode.ServiceUnavailable, "ledger_unavailable");
            Assert.True(read.Headers.RetryAfter is not null, "a 503 says when to retry");
        }

        Assert.True(held.Reached.Task.IsCompleted, "the read reached storage");
        held.Release.SetResult();
        using var after = await http.GetAsync(new Uri($"/accounts/{id}", UriKind.Relative));
        await after.AssertProblem(HttpStatusCode.NotFound, "account_not_found");
    }

    [Fact]
    public async Task Opening_an_account_waits_for_a_write_storage_holds_past_the_client_timeout()
    {
        var rows = new HeldAccountRows();
        await using var ledger = LedgerWith(rows, out var gatewayPort);
        await using var client = ClientOf(ledger, gatewayPort);
        using var http = client.CreateClient();
        var id = $"held-write-{Guid.NewGuid():N}";
        var held = rows.HoldWrite(id);

        var open = http.SendAsync(Http.Post("/accounts", $$"""{"id":"{{id}}","currency":"EUR"}"""));
        await held.Reached.Task.WaitAsync(TimeSpan.FromSeconds(30));
        // Three times the client's timeout (Orleans checks for expired calls about once a second): a call that waited only that long has given up by now.
        await Task.Delay(3 * ClientTimeout);
        Assert.False(open.IsCompleted, "the open answered while its write was held");
        held.Release.SetResult();

        using var opened = await open.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.Created, opened.StatusCode);
        using var read = await http.GetAsync(new Uri($"/accounts/{id}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal("EUR", (await read.Body()).GetProperty("currency").GetString());
    }

    [Fact]
    public async Task A_batch_item_whose_owner_check_times_out_fails_alone_and_the_others_commit()
    {
        var rows = new HeldAccountRows();
        await using var ledger = LedgerWith(rows, out var gatewayPort);
        using var admin = ledger.CreateClient();
        var key = await CreateClientKey(admin);
        using var owner = WithKey(ledger.CreateClient(), key);
        var (from, to) = ($"owned-{Guid.NewGuid():N}", await admin.OpenAccount());
        using (var open = await owner.SendAsync(Http.Post("/accounts", $$"""{"id":"{{from}}","currency":"USD"}""")))
        {
            Assert.Equal(HttpStatusCode.Created, open.StatusCode);
        }

        using (var deposit = await admin.SendAsync(Http.Post($"/accounts/{from}/deposits", """{"amount":1000}""", $"dep-{Guid.NewGuid():N}")))
        {
            Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
        }

        // Another API instance knows no owner yet: each item's check reads its debit account.
        await using var client = ClientOf(ledger, gatewayPort);
        using var http = WithKey(client.CreateClient(), key);
        var unread = $"held-owner-{Guid.NewGuid():N}";
        var held = rows.HoldRead(unread);
        var k = $"b-{Guid.NewGuid():N}";
        var json = $$"""
            [{"id":"{{k}}-1","from":"{{from}}","to":"{{to}}","amount":100,"currency":"USD"},
             {"id":"{{k}}-2","from":"{{unread}}","to":"{{to}}","amount":100,"currency":"USD"}]
            """;

        using var response = await http.PostAsync(new Uri("/transfers/batch", UriKind.Relative), Http.Json(json));
        held.Release.SetResult();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var results = (await response.Body()).GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(201, results[0].GetProperty("status").GetInt32());
        Assert.Equal(503, results[1].GetProperty("status").GetInt32());
        Assert.Equal("ledger_unavailable", results[1].GetProperty("problem").GetProperty("code").GetString());
        Assert.Equal((900L, 100L), (await admin.Available(from), await admin.Available(to)));
    }

    private static async Task<string> CreateClientKey(HttpClient admin)
    {
        using var created = await admin.SendAsync(Http.Post("/keys", """{"name":"batch owner","role":"client"}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return (await created.Body()).GetProperty("key").GetString()!;
    }

    private static HttpClient WithKey(HttpClient client, string key)
    {
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    /// <summary>An API with an embedded silo whose ledger storage goes through <paramref name="rows"/>.</summary>
    private WebApplicationFactory<Program> LedgerWith(HeldAccountRows rows, out int gatewayPort)
    {
        var gateway = ApiFixture.FreePort();
        gatewayPort = gateway;
        var ledger = api.WithWebHostBuilder(builder =>
        {
            builder.UseSetting("Transactor:Embedded:SiloPort", ApiFixture.FreePort().ToString(CultureInfo.InvariantCulture));
            builder.UseSetting("Transactor:Embedded:GatewayPort", gateway.ToString(CultureInfo.InvariantCulture));
            builder.ConfigureTestServices(services => services.AddKeyedSingleton<IGrainStorage>(
                StorageNames.Ledger,
                (sp, _) => new HeldAccountRows.Storage(rows, new InMemoryGrainStorage(sp.GetRequiredService<InMemoryLedgerStore>(), sp.GetRequiredService<Serializer>()))));
        });
        _ = ledger.Server;
        return ledger;
    }

    /// <summary>A second API instance: an Orleans client of <paramref name="ledger"/>'s silo, waiting <see cref="ClientTimeout"/> for an answer.</summary>
    private WebApplicationFactory<Program> ClientOf(WebApplicationFactory<Program> ledger, int gatewayPort) =>
        api.ClientOf(ledger, gatewayPort, ("Transactor:FailureDetection:ClientResponseTimeout", ClientTimeout.ToString("c", CultureInfo.InvariantCulture)));
}

/// <summary>Holds the next read or write of an account's row until the test releases it.</summary>
internal sealed class HeldAccountRows
{
    private readonly ConcurrentDictionary<string, Hold> _reads = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Hold> _writes = new(StringComparer.Ordinal);

    public Hold HoldRead(string accountId) => _reads[Key(accountId)] = new Hold();

    public Hold HoldWrite(string accountId) => _writes[Key(accountId)] = new Hold();

    private static string Key(string accountId) => "acct/" + accountId;

    internal sealed class Hold
    {
        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task Wait()
        {
            Reached.TrySetResult();
            await Release.Task;
        }
    }

    internal sealed class Storage(HeldAccountRows rows, IGrainStorage inner) : IGrainStorage
    {
        public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            if (stateName == AccountGrain.StateName && rows._reads.TryRemove(grainId.Key.ToString()!, out var hold))
            {
                await hold.Wait();
            }

            await inner.ReadStateAsync(stateName, grainId, grainState);
        }

        public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            if (stateName == AccountGrain.StateName && rows._writes.TryRemove(grainId.Key.ToString()!, out var hold))
            {
                await hold.Wait();
            }

            await inner.WriteStateAsync(stateName, grainId, grainState);
        }

        public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) => inner.ClearStateAsync(stateName, grainId, grainState);
    }
}
