using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Transactor.Api.Events;
using Transactor.Tests.Api;

namespace Transactor.Tests.Events;

/// <summary>The SSE streams over real HTTP: resuming, a client that never reads, and asynchronous submission.</summary>
[Collection(LiveApiTestGroup.Name)]
public sealed class EventsApiTests(LiveApiFixture api)
{
    [Fact]
    public async Task Resuming_with_Last_Event_ID_loses_nothing()
    {
        using var http = api.Http();
        var account = await http.OpenAccount();
        var keys = Enumerable.Range(0, 10).Select(i => $"resume-{i}-{Guid.NewGuid():N}").ToArray();

        List<SseEvent> first;
        using (var stream = await Sse.Open(http, $"events/transfers?account={account}"))
        {
            foreach (var key in keys[..4])
            {
                await Deposit(http, account, key);
            }

            first = await stream.Read(4, TimeSpan.FromSeconds(10));
        }

        // Disconnected after the 2nd event was processed: six more end meanwhile.
        foreach (var key in keys[4..])
        {
            await Deposit(http, account, key);
        }

        using var resumed = await Sse.Open(http, $"events/transfers?account={account}", lastEventId: first[1].Id);
        var rest = await resumed.Read(8, TimeSpan.FromSeconds(10));
        Assert.Equal(keys[2..], rest.Select(e => e.Data.GetProperty("id").GetString()));
        Assert.All(rest, e => Assert.Equal("transfer", e.Type));
        // Ids grow, so a further resume would continue from the last.
        var sequences = rest.Select(e => e.Data.GetProperty("sequence").GetInt64()).ToArray();
        Assert.Equal(sequences.Order(), sequences);
        Assert.True(first[1].Data.GetProperty("sequence").GetInt64() < sequences[0], "the resumed stream starts after the last event id");
    }

    [Fact]
    public async Task A_Last_Event_ID_of_another_stream_gets_a_gap_event_first()
    {
        using var http = api.Http();
        var account = await http.OpenAccount();
        using var stream = await Sse.Open(http, $"events/transfers?account={account}", lastEventId: "00000000-5");
        var gap = (await stream.Read(1, TimeSpan.FromSeconds(10))).Single();
        Assert.Equal("gap", gap.Type);
        Assert.Equal("unknown_id", gap.Data.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task A_subscriber_that_never_reads_holds_at_most_its_bound_and_then_hears_what_it_missed()
    {
        var account = $"stuck-{Guid.NewGuid():N}";
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(IPAddress.Loopback, api.BaseAddress.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /events/transfers?account={account} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ApiFixture.AdminKey}\r\nAccept: text/event-stream\r\n\r\n"));
        await WaitUntil(() => api.Events.Subscribers().Count > 0, "the stuck subscriber never registered");

        // Far more than the socket, Kestrel's response buffer and the subscriber's buffer hold
        // together (each event is about 400 bytes): the movements of a busy ledger, as silos send them.
        const int sent = 60_000;
        for (var batch = 0; batch < sent / 1_000; batch++)
        {
            await api.Events.OnEvents(Batch(account, batch * 1_000, 1_000));
        }

        var (_, largest) = api.Events.Subscribers();
        Assert.True(largest <= TransferEventLog.SubscriberCapacity, $"a subscriber holds {largest} movements, more than its bound {TransferEventLog.SubscriberCapacity}");
        Assert.True(largest == TransferEventLog.SubscriberCapacity, $"the subscriber that never reads holds {largest}: the test did not fill its buffer");

        // Once it reads, it hears how many it missed before the next movement.
        var text = new StringBuilder();
        var buffer = new byte[64 * 1024];
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!text.ToString().Contains("event: missed", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            var read = await socket.ReceiveAsync(buffer);
            Assert.True(read > 0, "the server closed the stream");
            text.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        Assert.Contains("event: missed", text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_sampled_stream_sends_at_most_its_rate_counts_the_rest_and_ends_on_the_newest()
    {
        var account = $"sampled-{Guid.NewGuid():N}";
        using var http = api.Http();
        foreach (var bad in new[] { "0", "1001", "-1", "ten" })
        {
            await (await http.GetAsync($"events/transfers?max_per_second={bad}")).AssertProblem(HttpStatusCode.BadRequest, "invalid_field");
        }

        // 4 a second: one movement every quarter of a second, the newest of those that ended meanwhile.
        using var stream = await Sse.Open(http, $"events/transfers?account={account}&max_per_second=4");
        const int sent = 3_000;
        for (var batch = 0; batch < sent / 1_000; batch++)
        {
            await api.Events.OnEvents(Batch(account, batch * 1_000, 1_000));
        }

        // Every movement is either sent or counted as skipped, and the last one sent is the newest.
        long skipped = 0;
        var transfers = new List<SseEvent>();
        while (transfers.Count + skipped < sent)
        {
            var next = (await stream.Read(1, TimeSpan.FromSeconds(10))).Single();
            if (next.Type == "skipped")
            {
                skipped += next.Data.GetProperty("skipped").GetInt64();
            }
            else
            {
                Assert.Equal("transfer", next.Type);
                transfers.Add(next);
            }
        }

        Assert.Equal(sent, transfers.Count + skipped);
        Assert.True(transfers.Count <= 20, $"{transfers.Count} movements were sent for {sent} pushed at once: the stream did not sample");
        Assert.Equal($"{account}-m{sent - 1}", transfers[^1].Data.GetProperty("id").GetString());
        var sequences = transfers.Select(e => e.Data.GetProperty("sequence").GetInt64()).ToArray();
        Assert.Equal(sequences.Order(), sequences);
    }

    [Fact]
    public async Task Prefer_respond_async_answers_202_with_a_location_that_shows_the_outcome()
    {
        using var http = api.Http();
        var from = await http.OpenAccount(10_000);
        var to = await http.OpenAccount();
        var key = $"async-{Guid.NewGuid():N}";
        using var events = await Sse.Open(http, $"events/transfers?account={to}");
        var body = $$"""{"from":"{{from}}","to":"{{to}}","amount":2500,"currency":"USD"}""";
        using var request = Http.Post("transfers", body, key);
        request.Headers.Add("Prefer", "respond-async");
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal($"/transfers/{key}", response.Headers.Location?.OriginalString);
        Assert.Equal("respond-async", response.Headers.GetValues("Preference-Applied").Single());
        Assert.Equal("pending", (await response.Body()).GetProperty("status").GetString());

        // The events stream delivers the settlement; the location then shows it.
        var settled = (await events.Read(1, TimeSpan.FromSeconds(10))).Single();
        Assert.Equal(key, settled.Data.GetProperty("id").GetString());
        Assert.Equal("committed", settled.Data.GetProperty("status").GetString());
        var outcome = await (await http.GetAsync(response.Headers.Location!.OriginalString.TrimStart('/'))).Body();
        Assert.Equal("committed", outcome.GetProperty("status").GetString());
        Assert.Equal(2500, await http.Available(to));

        // Same key, either mode: the one outcome (201, replayed), nothing moves again.
        using var again = Http.Post("transfers", body, key);
        again.Headers.Add("Prefer", "respond-async");
        using var replay = await http.SendAsync(again);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        using var other = Http.Post("transfers", body.Replace("2500", "2600", StringComparison.Ordinal), key);
        other.Headers.Add("Prefer", "respond-async");
        await (await http.SendAsync(other)).AssertProblem(HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");
        Assert.Equal(7500, await http.Available(from));
    }

    [Fact]
    public async Task A_client_key_follows_only_its_own_account_reads_no_other_balance_and_is_cut_off_when_revoked()
    {
        using var admin = api.Http();
        async Task<(HttpClient Client, string KeyId)> ClientKey(string name)
        {
            using var created = await admin.SendAsync(Http.Post("keys", $$"""{"name":"{{name}}","role":"client"}"""));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var json = await created.Body();
            var client = new HttpClient { BaseAddress = api.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", json.GetProperty("key").GetString());
            return (client, json.GetProperty("details").GetProperty("id").GetString()!);
        }

        var (alice, aliceKey) = await ClientKey("events alice");
        var (bob, _) = await ClientKey("events bob");
        using (alice)
        using (bob)
        {
            var (mine, theirs) = (await alice.OpenAccount(), await bob.OpenAccount());
            await Deposit(admin, mine, $"events-client-{Guid.NewGuid():N}");
            await Deposit(admin, theirs, $"events-client-{Guid.NewGuid():N}");

            // Every movement, another's account, the metrics stream: refused, with the stable codes.
            foreach (var (path, code) in new[] { ("events/transfers", "forbidden"), ($"events/transfers?account={theirs}", "not_owner"), ("events/transfers?account=no-such-account", "not_owner"), ("events/metrics", "forbidden") })
            {
                using var refused = await alice.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
                await refused.AssertProblem(HttpStatusCode.Forbidden, code);
            }

            using var events = await Sse.Open(alice, $"events/transfers?account={mine}");
            var transfer = $"events-client-{Guid.NewGuid():N}";
            using (var moved = await alice.SendAsync(Http.Post("transfers", $$"""{"from":"{{mine}}","to":"{{theirs}}","amount":40,"currency":"USD"}""", transfer)))
            {
                Assert.Equal(HttpStatusCode.Created, moved.StatusCode);
            }

            // (The deposit's event may come first: it can reach this API after the stream opened.)
            var seen = (await events.Read(1, TimeSpan.FromSeconds(10))).Single().Data;
            if (seen.GetProperty("id").GetString() != transfer)
            {
                seen = (await events.Read(1, TimeSpan.FromSeconds(10))).Single().Data;
            }

            Assert.Equal((transfer, mine, theirs), (seen.GetProperty("id").GetString(), seen.GetProperty("from").GetString(), seen.GetProperty("to").GetString()));
            Assert.Equal(60, seen.GetProperty("from_available").GetInt64());
            Assert.Equal(JsonValueKind.Null, seen.GetProperty("to_available").ValueKind);
            Assert.Equal(0, seen.GetProperty("to_version").GetInt64());
            // Nor does it learn about the cluster: no silo, no position in the log, no trace of the request.
            Assert.Equal((0, JsonValueKind.Null, JsonValueKind.Null), (seen.GetProperty("sequence").GetInt64(), seen.GetProperty("silo").ValueKind, seen.GetProperty("trace_id").ValueKind));

            // The admin's stream of the same account shows both balances.
            using (var all = await Sse.Open(admin, $"events/transfers?account={mine}&backlog=1"))
            {
                var full = (await all.Read(1, TimeSpan.FromSeconds(10))).Single().Data;
                Assert.Equal(140, full.GetProperty("to_available").GetInt64());
            }

            // One client key holds at most ClientStreams.MaxPerKey streams on an instance: the next is refused until one closes.
            var bobs = new List<Sse>();
            try
            {
                for (var i = 0; i < ClientStreams.MaxPerKey; i++)
                {
                    bobs.Add(await Sse.Open(bob, $"events/transfers?account={theirs}"));
                }

                using (var refused = await bob.GetAsync($"events/transfers?account={theirs}", HttpCompletionOption.ResponseHeadersRead))
                {
                    await refused.AssertProblem(HttpStatusCode.TooManyRequests, "too_many_streams");
                }

                bobs[0].Dispose();
                bobs.RemoveAt(0);
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
                while (api.Services.GetRequiredService<ClientStreams>().Count >= ClientStreams.MaxPerKey + 1)
                {
                    Assert.True(DateTime.UtcNow < deadline, "a closed stream's place was not given back");
                    await Task.Delay(50);
                }

                bobs.Add(await Sse.Open(bob, $"events/transfers?account={theirs}"));
            }
            finally
            {
                bobs.ForEach(b => b.Dispose());
            }

            // Revoked: the open stream ends with a last event, within the key cache time.
            using (var revoke = await admin.DeleteAsync($"keys/{aliceKey}"))
            {
                Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
            }

            var last = (await events.Read(1, TimeSpan.FromSeconds(15))).Single();
            Assert.Equal(("revoked", "api_key_revoked"), (last.Type, last.Data.GetProperty("code").GetString()));
            Assert.True(await events.EndsWithin(TimeSpan.FromSeconds(5)), "the stream goes on after its key was revoked");
        }
    }

    private static LedgerEventBatch Batch(string account, int first, int count) => new(
        "S127.0.0.1:1:1",
        Enumerable.Range(first, count).Select(i => new MovementEvent($"{account}-m{i}", TransferKind.Deposit, null, account, 100, "USD", TransferStatus.Committed, null, 1.5, null, DateTimeOffset.UtcNow, null, 0, i * 100L, i)).ToArray(),
        new SiloLoad(0, 0, 0, 0, 0, 1, 1, DateTimeOffset.UtcNow),
        0);

    private static async Task Deposit(HttpClient http, string account, string key)
    {
        using var response = await http.SendAsync(Http.Post($"accounts/{account}/deposits", """{"amount":100}""", key));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    private static async Task WaitUntil(Func<bool> condition, string message)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, message);
            await Task.Delay(20);
        }
    }
}

/// <summary>One event of a stream.</summary>
internal sealed record SseEvent(string Type, string? Id, JsonElement Data);

/// <summary>A minimal reader of a Server-Sent Events response.</summary>
internal sealed class Sse : IDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private Sse(HttpResponseMessage response, Stream body)
    {
        _response = response;
        _reader = new StreamReader(body, Encoding.UTF8);
    }

    public static async Task<Sse> Open(HttpClient http, string path, string? lastEventId = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return new Sse(response, await response.Content.ReadAsStreamAsync());
    }

    /// <summary>The next <paramref name="count"/> events (not counting the <c>ready</c> event that opens a stream), or fails after <paramref name="timeout"/>.</summary>
    public async Task<List<SseEvent>> Read(int count, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        var events = new List<SseEvent>();
        string type = "message", data = "";
        string? id = null;
        try
        {
            while (events.Count < count)
            {
                var line = await _reader.ReadLineAsync(cancel.Token) ?? throw new InvalidOperationException("The stream ended.");
                if (line.Length == 0)
                {
                    if (data.Length > 0 && type != "ready")
                    {
                        events.Add(new SseEvent(type, id, JsonDocument.Parse(data).RootElement.Clone()));
                    }

                    (type, data, id) = ("message", "", null);
                }
                else if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    type = line[7..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    data += line[6..];
                }
                else if (line.StartsWith("id: ", StringComparison.Ordinal))
                {
                    id = line[4..];
                }
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"{events.Count} of {count} events arrived within {timeout}");
        }

        return events;
    }

    /// <summary>True when the server ends the stream within <paramref name="timeout"/> (what is left unread is skipped).</summary>
    public async Task<bool> EndsWithin(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            while (await _reader.ReadLineAsync(cancel.Token) is not null)
            {
            }

            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        _reader.Dispose();
        _response.Dispose();
    }
}
