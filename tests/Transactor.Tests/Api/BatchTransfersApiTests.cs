using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;

namespace Transactor.Tests.Api;

/// <summary><c>POST /transfers/batch</c>: one result per item, in order; bad items fail alone; bounds answered with 413; nothing changed by a refused batch.</summary>
[Collection(ApiTestGroup.Name)]
public sealed class BatchTransfersApiTests(ApiFixture api)
{
    private readonly HttpClient _client = api.CreateClient();

    [Fact]
    public async Task Each_item_gets_its_own_result_and_a_resubmitted_batch_moves_nothing_twice()
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var k = $"b-{Guid.NewGuid():N}";
        var json = $$"""
            [
              {"id":"{{k}}-1","from":"{{a}}","to":"{{b}}","amount":100,"currency":"USD"},
              {"id":"{{k}}-2","from":"{{a}}","to":"{{b}}","amount":5000,"currency":"USD"},
              {"id":"{{k}}-3","from":"{{a}}","to":"{{b}}","amount":"7","currency":"USD"},
              {"id":"{{k}}/4","from":"{{a}}","to":"{{b}}","amount":7,"currency":"USD"},
              {"id":"{{k}}-5","from":"{{a}}","to":"{{b}}","amount":200,"currency":"USD","pending":true,"timeout":"PT1H"},
              {"id":"{{k}}-6","from":"{{a}}","to":"nobody-{{k}}","amount":1,"currency":"USD"}
            ]
            """;

        var first = await Submit(json);
        Assert.Equal(2, first.GetProperty("succeeded").GetInt32());
        var results = first.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(
            [(201, null), (422, "insufficient_funds"), (400, "invalid_amount"), (400, "invalid_field"), (201, null), (404, "account_not_found")],
            results.Select(r => (r.GetProperty("status").GetInt32(), r.GetProperty("problem").ValueKind == JsonValueKind.Null ? null : r.GetProperty("problem").GetProperty("code").GetString())).ToArray());
        Assert.Equal($"{k}-1", results[0].GetProperty("id").GetString());
        Assert.Equal("pending", results[4].GetProperty("transfer").GetProperty("status").GetString());
        Assert.Equal((700L, 100L), (await _client.Available(a), await _client.Available(b)));

        var again = await Submit(json);
        var replayed = again.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("replayed").GetBoolean()).ToArray();
        Assert.Equal([true, true, false, false, true, true], replayed);
        Assert.Equal((700L, 100L), (await _client.Available(a), await _client.Available(b)));
    }

    /// <summary>
    /// A batch larger than one coordinator call (<see cref="Transactor.Api.Apis.BatchTransfersApi.ItemsPerCall"/>)
    /// goes in chunks: every item still gets its own result in the order sent (each item's own
    /// amount comes back on it), a malformed item at a chunk's edge fails alone, and an id repeated
    /// in the same chunk or in a later one is one movement, applied once.
    /// </summary>
    [Fact]
    public async Task A_batch_of_several_calls_answers_every_item_in_order_and_applies_a_repeated_id_once()
    {
        var (a, b) = (await _client.OpenAccount(100_000), await _client.OpenAccount());
        var k = $"b-{Guid.NewGuid():N}";
        const int count = 250;
        // Items 10 and 200 repeat item 0 (the same chunk, a later one); item 15 is malformed.
        var keys = Enumerable.Range(0, count).Select(i => i is 10 or 200 ? $"{k}-0" : $"{k}-{i}").ToArray();
        long Amount(int i) => i is 10 or 200 ? 1 : i + 1;
        var json = "[" + string.Join(",", keys.Select((key, i) => i == 15
            ? $$"""{"id":"{{key}}","from":"{{a}}","to":"{{b}}","amount":"x","currency":"USD"}"""
            : $$"""{"id":"{{key}}","from":"{{a}}","to":"{{b}}","amount":{{Amount(i)}},"currency":"USD"}""")) + "]";

        var answer = await Submit(json);

        var results = answer.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(count - 1, answer.GetProperty("succeeded").GetInt32());
        Assert.Equal(keys, results.Select(r => r.GetProperty("id").GetString()));
        for (var i = 0; i < count; i++)
        {
            if (i == 15)
            {
                Assert.Equal(400, results[i].GetProperty("status").GetInt32());
                continue;
            }

            Assert.Equal(201, results[i].GetProperty("status").GetInt32());
            var transfer = results[i].GetProperty("transfer");
            Assert.Equal((keys[i], Amount(i)), (transfer.GetProperty("id").GetString(), transfer.GetProperty("amount").GetInt64()));
        }

        Assert.Equal(2, results.Count(r => r.GetProperty("replayed").GetBoolean()));
        Assert.True(results[200].GetProperty("replayed").GetBoolean());
        var moved = Enumerable.Range(0, count).Where(i => i is not (10 or 200 or 15)).Sum(Amount);
        Assert.Equal((100_000L - moved, moved), (await _client.Available(a), await _client.Available(b)));
    }

    public static TheoryData<string, string, HttpStatusCode, string> BadBatches() => new()
    {
        { "an object, not an array", """{"id":"x","from":"{A}","to":"{B}","amount":1,"currency":"USD"}""", HttpStatusCode.BadRequest, "malformed_json" },
        { "truncated JSON", """[{"id":"x","from":"{A}","to":"{B}","amount":1,"currency":"USD"},""", HttpStatusCode.BadRequest, "malformed_json" },
        { "empty array", "[]", HttpStatusCode.BadRequest, "empty_batch" },
        { "1,001 items", "[" + string.Join(",", Enumerable.Range(0, 1_001).Select(i => $$"""{"id":"{K}-{{i}}","from":"{A}","to":"{B}","amount":1,"currency":"USD"}""")) + "]", HttpStatusCode.RequestEntityTooLarge, "payload_too_large" },
    };

    [Theory]
    [MemberData(nameof(BadBatches))]
    public async Task A_refused_batch_is_a_problem_and_changes_nothing(string what, string template, HttpStatusCode status, string code)
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var json = template.Replace("{A}", a, StringComparison.Ordinal).Replace("{B}", b, StringComparison.Ordinal).Replace("{K}", $"b-{Guid.NewGuid():N}", StringComparison.Ordinal);

        using var response = await _client.PostAsync("/transfers/batch", Http.Json(json));

        var problem = await response.AssertProblem(status, code);
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()), what);
        Assert.Equal((1_000L, 0L), (await _client.Available(a), await _client.Available(b)));
    }

    [Fact]
    public async Task A_body_over_the_limit_is_413_even_when_it_arrives_without_a_length()
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var padding = new string(' ', 1024 * 1024);
        var json = $$"""[{"id":"b-{{Guid.NewGuid():N}}","from":"{{a}}","to":"{{b}}","amount":1,"currency":"USD"}{{padding}}]""";
        // A stream of unknown length is sent chunked: only reading it can find it too long.
        using var content = new StreamContent(new NonSeekableStream(Encoding.UTF8.GetBytes(json)));
        content.Headers.ContentType = new("application/json");

        using var response = await _client.PostAsync("/transfers/batch", content);

        await response.AssertProblem(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        Assert.Equal((1_000L, 0L), (await _client.Available(a), await _client.Available(b)));
    }

    [Fact]
    public async Task Wrong_content_type_is_415()
    {
        using var response = await _client.PostAsync("/transfers/batch", new StringContent("[]", Encoding.UTF8, "text/plain"));
        await response.AssertProblem(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
    }

    /// <summary>
    /// Random batches of transfers among a few accounts (some too large, some repeating an id of an
    /// earlier batch), whose items run concurrently: every balance must be its start plus the items
    /// answered committed, once each, whatever order they ran in; no balance is negative; money is conserved.
    /// </summary>
    [Fact]
    public void Batches_agree_with_a_model_of_their_committed_items()
    {
        var replay = new Replay(new Rnd(20261205, 0x2545F4914F6CDD1D), Microsoft.FSharp.Core.FSharpOption<int>.None);
        var config = Config.QuickThrowOnFailure.WithMaxTest(12).WithEndSize(60).WithReplay(replay);
        var item = from f in Gen.Choose(0, 3) from t in Gen.Choose(0, 3) from m in Gen.Choose(1, 900) from repeat in Gen.Elements(false, false, false, true)
                   select (From: f, To: t, Amount: (long)m, Repeat: repeat);
        var batches = Gen.ListOf(Gen.NonEmptyListOf(item).Select(l => l.Take(BatchSize).ToArray())).Select(l => l.Take(4).ToArray());
        Check.One(config, Prop.ForAll(Arb.From(batches), sequence => Task.Run(() => RunBatches(sequence)).GetAwaiter().GetResult()));
    }

    private const int BatchSize = 40;

    private async Task<bool> RunBatches((int From, int To, long Amount, bool Repeat)[][] sequence)
    {
        var ids = new[] { await _client.OpenAccount(1_000), await _client.OpenAccount(1_000), await _client.OpenAccount(0), await _client.OpenAccount(500) };
        var expected = new long[] { 1_000, 1_000, 0, 500 };
        var sent = new List<(string Key, string Json, (int From, int To, long Amount) Move)>();
        var committed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var batch in sequence)
        {
            var items = batch.Select((x, i) => x.Repeat && sent.Count > 0 ? sent[i % sent.Count] : New(x)).ToArray();
            var answer = await Submit("[" + string.Join(",", items.Select(i => i.Json)) + "]");
            foreach (var (result, sentItem) in answer.GetProperty("results").EnumerateArray().Zip(items))
            {
                var status = result.GetProperty("status").GetInt32();
                Assert.True(status is 201 or 422, $"{sentItem.Key}: status {status}: {result}");
                if (status == 201 && committed.Add(sentItem.Key))
                {
                    Assert.False(result.GetProperty("replayed").GetBoolean() && !sent.Contains(sentItem), $"{sentItem.Key} replayed on its first run");
                    expected[sentItem.Move.From] -= sentItem.Move.Amount;
                    expected[sentItem.Move.To] += sentItem.Move.Amount;
                }
            }

            sent.AddRange(items.Where(i => !sent.Contains(i)));
            for (var i = 0; i < ids.Length; i++)
            {
                var available = await _client.Available(ids[i]);
                Assert.True(available == expected[i] && available >= 0, $"account {i}: model {expected[i]}, API {available}");
            }
        }

        return true;

        (string Key, string Json, (int From, int To, long Amount) Move) New((int From, int To, long Amount, bool Repeat) x)
        {
            var key = $"bp-{Guid.NewGuid():N}";
            var to = x.From == x.To ? (x.To + 1) % 4 : x.To;
            return (key, $$"""{"id":"{{key}}","from":"{{ids[x.From]}}","to":"{{ids[to]}}","amount":{{x.Amount}},"currency":"USD"}""", (x.From, to, x.Amount));
        }
    }

    private async Task<JsonElement> Submit(string json)
    {
        using var response = await _client.PostAsync("/transfers/batch", Http.Json(json));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private sealed class NonSeekableStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
