using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Transactor.Tests.Api;

/// <summary>
/// Linked transfers and metadata over HTTP: the shapes users rely on, the failing leg named,
/// idempotent retries, and every malformed field refused with a stable code and nothing changed.
/// </summary>
[Collection(ApiTestGroup.Name)]
public sealed class LinkedTransfersApiTests(ApiFixture api)
{
    private readonly HttpClient _client = api.CreateClient();

    [Fact]
    public async Task Linked_legs_commit_together_and_a_read_shows_the_legs_accounts_and_metadata()
    {
        var (a, b, c) = (await _client.OpenAccount(1_000), await _client.OpenAccount(), await _client.OpenAccount());
        var key = $"lt-{Guid.NewGuid():N}";
        var json = $$$"""{"legs":[{"from":"{{{a}}}","to":"{{{b}}}","amount":600,"currency":"USD"},{"from":"{{{b}}}","to":"{{{c}}}","amount":30,"currency":"USD"}],"metadata":{"orderId":"o-1","note":"fee to c"}}""";

        using var created = await _client.SendAsync(Http.Post("/transfers", json, key));

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal($"/transfers/{key}", created.Headers.Location?.OriginalString);
        var body = await created.Body();
        Assert.Equal(("linked", "committed", 630L, "USD"), (body.GetProperty("kind").GetString(), body.GetProperty("status").GetString(), body.GetProperty("amount").GetInt64(), body.GetProperty("currency").GetString()));
        Assert.Equal("o-1", body.GetProperty("metadata").GetProperty("orderId").GetString());
        Assert.Equal(2, body.GetProperty("legs").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("failed_leg").ValueKind);
        var accounts = body.GetProperty("accounts").EnumerateArray().ToDictionary(x => x.GetProperty("id").GetString()!, x => x.GetProperty("available").GetInt64());
        Assert.Equal(new Dictionary<string, long> { [a] = 400, [b] = 570, [c] = 30 }, accounts);

        var read = await _client.GetFromJsonAsync<JsonElement>($"/transfers/{key}");
        Assert.Equal(("linked", "committed", "fee to c"), (read.GetProperty("kind").GetString(), read.GetProperty("status").GetString(), read.GetProperty("metadata").GetProperty("note").GetString()));
        Assert.Equal(c, read.GetProperty("legs")[1].GetProperty("to").GetString());
        Assert.Equal(3, read.GetProperty("accounts").GetArrayLength());
        Assert.Equal((400L, 570L, 30L), (await _client.Available(a), await _client.Available(b), await _client.Available(c)));
    }

    [Fact]
    public async Task A_leg_that_fails_is_named_and_no_leg_moves()
    {
        var (a, b, c) = (await _client.OpenAccount(1_000), await _client.OpenAccount(), await _client.OpenAccount(10));
        var key = $"lt-{Guid.NewGuid():N}";
        var json = $$"""{"legs":[{"from":"{{a}}","to":"{{b}}","amount":600,"currency":"USD"},{"from":"{{c}}","to":"{{b}}","amount":11,"currency":"USD"}]}""";

        using var rejected = await _client.SendAsync(Http.Post("/transfers", json, key));

        var problem = await rejected.AssertProblem(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        Assert.Equal(1, problem.GetProperty("failed_leg").GetInt32());
        Assert.StartsWith("Leg 1:", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal((1_000L, 0L, 10L), (await _client.Available(a), await _client.Available(b), await _client.Available(c)));
        foreach (var account in new[] { a, b, c })
        {
            // Whatever was prepared before c refused (ids are random, so order is too) is released before the answer.
            var balances = await _client.GetFromJsonAsync<JsonElement>($"/accounts/{account}");
            Assert.Equal((0L, 0L), (balances.GetProperty("reserved").GetInt64(), balances.GetProperty("incoming").GetInt64()));
        }

        var read = await _client.GetFromJsonAsync<JsonElement>($"/transfers/{key}");
        Assert.Equal(("rejected", "insufficient_funds", 1), (read.GetProperty("status").GetString(), read.GetProperty("reason").GetString(), read.GetProperty("failed_leg").GetInt32()));
    }

    [Fact]
    public async Task A_leg_from_an_account_to_itself_is_422_same_account_at_that_leg()
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var json = $$"""{"legs":[{"from":"{{a}}","to":"{{b}}","amount":5,"currency":"USD"},{"from":"{{b}}","to":"{{b}}","amount":1,"currency":"USD"}]}""";

        using var rejected = await _client.SendAsync(Http.Post("/transfers", json, $"lt-{Guid.NewGuid():N}"));

        var problem = await rejected.AssertProblem(HttpStatusCode.UnprocessableEntity, "same_account");
        Assert.Equal(1, problem.GetProperty("failed_leg").GetInt32());
        Assert.Equal((1_000L, 0L), (await _client.Available(a), await _client.Available(b)));
    }

    [Fact]
    public async Task A_retry_gets_the_original_answer_and_another_request_under_the_key_is_refused()
    {
        var (a, b, c) = (await _client.OpenAccount(1_000), await _client.OpenAccount(), await _client.OpenAccount());
        var key = $"lt-{Guid.NewGuid():N}";
        var json = $$$"""{"legs":[{"from":"{{{a}}}","to":"{{{b}}}","amount":100,"currency":"USD"},{"from":"{{{a}}}","to":"{{{c}}}","amount":5,"currency":"USD"}],"metadata":{"x":"1","y":"2"}}""";
        using var first = await _client.SendAsync(Http.Post("/transfers", json, key));
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var original = await first.Body();

        // The same request, its metadata in another order: the original answer, moved once.
        using var again = await _client.SendAsync(Http.Post("/transfers", json.Replace("\"x\":\"1\",\"y\":\"2\"", "\"y\":\"2\",\"x\":\"1\"", StringComparison.Ordinal), key));
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(original.GetProperty("accounts").GetRawText(), (await again.Body()).GetProperty("accounts").GetRawText());

        // Another leg amount, other metadata, or a single transfer under the same key: refused.
        foreach (var other in new[]
        {
            json.Replace("\"amount\":5", "\"amount\":6", StringComparison.Ordinal),
            json.Replace("\"y\":\"2\"", "\"y\":\"3\"", StringComparison.Ordinal),
            $$"""{"from":"{{a}}","to":"{{b}}","amount":100,"currency":"USD"}""",
        })
        {
            using var refused = await _client.SendAsync(Http.Post("/transfers", other, key));
            await refused.AssertProblem(HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");
        }

        Assert.Equal((895L, 100L, 5L), (await _client.Available(a), await _client.Available(b), await _client.Available(c)));
    }

    [Fact]
    public async Task One_hundred_legs_fit_in_one_request()
    {
        var (a, b) = (await _client.OpenAccount(10_000), await _client.OpenAccount());
        var legs = string.Join(",", Enumerable.Range(0, 100).Select(_ => $$"""{"from":"{{a}}","to":"{{b}}","amount":3,"currency":"USD"}"""));

        using var created = await _client.SendAsync(Http.Post("/transfers", $$"""{"legs":[{{legs}}]}""", $"lt-{Guid.NewGuid():N}"));

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal((9_700L, 300L), (await _client.Available(a), await _client.Available(b)));
    }

    public static TheoryData<string, string, string, string> BadLinkedTransfers()
    {
        var leg = """{"from":"{A}","to":"{B}","amount":10,"currency":"USD"}""";
        string Legs(string legs) => $$"""{"legs":[{{legs}}]}""";
        string WithMetadata(string metadata) => $$"""{"legs":[{{leg}}],"metadata":{{metadata}}}""";
        var seventeen = "{" + string.Join(",", Enumerable.Range(0, 17).Select(i => $"\"k{i}\":\"v\"")) + "}";
        return new()
        {
            { "legs not an array", """{"legs":{"from":"{A}"}}""", "invalid_legs", "legs" },
            { "no legs", Legs(""), "invalid_legs", "legs" },
            { "101 legs", Legs(string.Join(",", Enumerable.Repeat(leg, 101))), "invalid_legs", "legs" },
            { "a leg not an object", Legs($"{leg},7"), "invalid_legs", "legs[1]" },
            { "a leg without from", Legs("""{"to":"{B}","amount":10,"currency":"USD"}"""), "invalid_field", "legs[0].from" },
            { "a leg without currency", Legs("""{"from":"{A}","to":"{B}","amount":10}"""), "invalid_field", "legs[0].currency" },
            { "a leg with an unknown field", Legs("""{"from":"{A}","to":"{B}","amount":10,"currency":"USD","memo":"x"}"""), "invalid_field", "legs[0].memo" },
            { "a leg's account id malformed", Legs($$"""{{leg}},{"from":"{A}","to":"not an id","amount":10,"currency":"USD"}"""), "invalid_field", "legs[1].to" },
            { "a leg's account id a number", Legs("""{"from":5,"to":"{B}","amount":10,"currency":"USD"}"""), "invalid_field", "legs[0].from" },
            { "a leg's amount a string", Legs("""{"from":"{A}","to":"{B}","amount":"10","currency":"USD"}"""), "invalid_amount", "legs[0].amount" },
            { "a leg's amount zero", Legs("""{"from":"{A}","to":"{B}","amount":0,"currency":"USD"}"""), "invalid_amount", "legs[0].amount" },
            { "a leg's amount negative", Legs("""{"from":"{A}","to":"{B}","amount":-1,"currency":"USD"}"""), "invalid_amount", "legs[0].amount" },
            { "a leg's amount a decimal", Legs("""{"from":"{A}","to":"{B}","amount":1.5,"currency":"USD"}"""), "invalid_amount", "legs[0].amount" },
            { "a leg's amount above 10^15", Legs("""{"from":"{A}","to":"{B}","amount":1000000000000001,"currency":"USD"}"""), "invalid_amount", "legs[0].amount" },
            { "a leg's currency lower case", Legs("""{"from":"{A}","to":"{B}","amount":10,"currency":"usd"}"""), "invalid_field", "legs[0].currency" },
            { "from beside legs", $$"""{"legs":[{{leg}}],"from":"{A}"}""", "invalid_field", "from" },
            { "amount beside legs", $$"""{"legs":[{{leg}}],"amount":10}""", "invalid_field", "amount" },
            { "pending beside legs", $$"""{"legs":[{{leg}}],"pending":true}""", "invalid_field", "pending" },
            { "metadata not an object", WithMetadata("[1]"), "invalid_metadata", "metadata" },
            { "metadata value a number", WithMetadata("""{"orderId":17}"""), "invalid_metadata", "metadata.orderId" },
            { "metadata value null", WithMetadata("""{"orderId":null}"""), "invalid_metadata", "metadata.orderId" },
            { "metadata with 17 keys", WithMetadata(seventeen), "invalid_metadata", "metadata" },
            { "metadata key with a space", WithMetadata("""{"order id":"1"}"""), "invalid_metadata", "metadata.*" },
            { "metadata key empty", WithMetadata("""{"":"1"}"""), "invalid_metadata", "metadata.*" },
            { "metadata key of 65 characters", WithMetadata($$"""{"{{new string('k', 65)}}":"1"}"""), "invalid_metadata", "metadata.*" },
            { "metadata value of 257 characters", WithMetadata($$"""{"k":"{{new string('v', 257)}}"}"""), "invalid_metadata", "metadata.k" },
            { "metadata value with a control character", WithMetadata("""{"k":"a\u0007b"}"""), "invalid_metadata", "metadata.k" },
            { "metadata key twice", WithMetadata("""{"k":"1","k":"2"}"""), "invalid_metadata", "metadata.k" },
            { "metadata bad on a single transfer", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","metadata":{"k":1}}""", "invalid_metadata", "metadata.k" },
        };
    }

    [Theory]
    [MemberData(nameof(BadLinkedTransfers))]
    public async Task A_malformed_linked_or_metadata_field_is_400_and_moves_nothing(string what, string template, string code, string field)
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var json = template.Replace("{A}", a, StringComparison.Ordinal).Replace("{B}", b, StringComparison.Ordinal);
        var key = $"lt-{Guid.NewGuid():N}";

        using var response = await _client.SendAsync(Http.Post("/transfers", json, key));

        var problem = await response.AssertProblem(HttpStatusCode.BadRequest, code);
        Assert.True(field == problem.GetProperty("field").GetString(), $"{what}: field {problem.GetProperty("field")}, expected {field}");
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()), what);
        Assert.Equal((1_000L, 0L), (await _client.Available(a), await _client.Available(b)));
        using var read = await _client.GetAsync($"/transfers/{key}");
        Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
    }

    [Fact]
    public async Task Metadata_on_an_account_deposit_withdrawal_and_post_is_stored_and_returned()
    {
        var id = $"acct-{Guid.NewGuid():N}";
        using var open = await _client.SendAsync(Http.Post("/accounts", $$$"""{"id":"{{{id}}}","currency":"USD","metadata":{"customer":"c-9","tier":"gold"}}"""));
        Assert.Equal(HttpStatusCode.Created, open.StatusCode);
        Assert.Equal("gold", (await open.Body()).GetProperty("metadata").GetProperty("tier").GetString());
        Assert.Equal("c-9", (await _client.GetFromJsonAsync<JsonElement>($"/accounts/{id}")).GetProperty("metadata").GetProperty("customer").GetString());

        // Opening again: the same metadata (in any order) changes nothing; other metadata is a conflict.
        using var same = await _client.SendAsync(Http.Post("/accounts", $$$"""{"id":"{{{id}}}","currency":"USD","metadata":{"tier":"gold","customer":"c-9"}}"""));
        Assert.Equal(HttpStatusCode.OK, same.StatusCode);
        using var other = await _client.SendAsync(Http.Post("/accounts", $$$"""{"id":"{{{id}}}","currency":"USD","metadata":{"tier":"silver","customer":"c-9"}}"""));
        await other.AssertProblem(HttpStatusCode.Conflict, "account_exists");

        var depositKey = $"dep-{Guid.NewGuid():N}";
        using var deposit = await _client.SendAsync(Http.Post($"/accounts/{id}/deposits", """{"amount":500,"metadata":{"source":"wire"}}""", depositKey));
        Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
        Assert.Equal("wire", (await deposit.Body()).GetProperty("metadata").GetProperty("source").GetString());
        Assert.Equal("wire", (await _client.GetFromJsonAsync<JsonElement>($"/transfers/{depositKey}")).GetProperty("metadata").GetProperty("source").GetString());
        // The movement's row and answer carry the account's balances, not its metadata (rows stay small).
        Assert.Equal(JsonValueKind.Null, (await _client.GetFromJsonAsync<JsonElement>($"/transfers/{depositKey}")).GetProperty("to_account").GetProperty("metadata").ValueKind);

        var withdrawalKey = $"wd-{Guid.NewGuid():N}";
        using var withdrawal = await _client.SendAsync(Http.Post($"/accounts/{id}/withdrawals", """{"amount":100,"metadata":{"atm":"7"}}""", withdrawalKey));
        Assert.Equal(HttpStatusCode.Created, withdrawal.StatusCode);
        Assert.Equal("7", (await _client.GetFromJsonAsync<JsonElement>($"/transfers/{withdrawalKey}")).GetProperty("metadata").GetProperty("atm").GetString());

        var to = await _client.OpenAccount();
        var pendingKey = $"pt-{Guid.NewGuid():N}";
        using var hold = await _client.SendAsync(Http.Post("/transfers", $$$"""{"from":"{{{id}}}","to":"{{{to}}}","amount":50,"currency":"USD","pending":true,"metadata":{"auth":"a-1"}}""", pendingKey));
        Assert.Equal(HttpStatusCode.Created, hold.StatusCode);
        using var post = await _client.SendAsync(Http.Post($"/transfers/{pendingKey}/post", """{"metadata":{"capture":"c-1"}}"""));
        Assert.Equal(HttpStatusCode.OK, post.StatusCode);
        Assert.Equal("c-1", (await post.Body()).GetProperty("metadata").GetProperty("capture").GetString());
        Assert.Equal("a-1", (await _client.GetFromJsonAsync<JsonElement>($"/transfers/{pendingKey}")).GetProperty("metadata").GetProperty("auth").GetString());
        Assert.Equal((350L, 50L), (await _client.Available(id), await _client.Available(to)));
    }

    [Fact]
    public async Task Bad_metadata_on_an_account_deposit_or_void_is_400_and_changes_nothing()
    {
        var id = $"acct-{Guid.NewGuid():N}";
        using var open = await _client.SendAsync(Http.Post("/accounts", $$$"""{"id":"{{{id}}}","currency":"USD","metadata":{"bad key":"x"}}"""));
        await open.AssertProblem(HttpStatusCode.BadRequest, "invalid_metadata");
        using var missing = await _client.GetAsync($"/accounts/{id}");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        var a = await _client.OpenAccount(1_000);
        var key = $"dep-{Guid.NewGuid():N}";
        using var deposit = await _client.SendAsync(Http.Post($"/accounts/{a}/deposits", """{"amount":5,"metadata":"source=wire"}""", key));
        await deposit.AssertProblem(HttpStatusCode.BadRequest, "invalid_metadata");
        using var withdrawal = await _client.SendAsync(Http.Post($"/accounts/{a}/withdrawals", """{"amount":5,"metadata":{"k":["x"]}}""", key));
        await withdrawal.AssertProblem(HttpStatusCode.BadRequest, "invalid_metadata");
        Assert.Equal(1_000L, await _client.Available(a));

        var b = await _client.OpenAccount();
        var pendingKey = $"pt-{Guid.NewGuid():N}";
        using var hold = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":50,"currency":"USD","pending":true}""", pendingKey));
        Assert.Equal(HttpStatusCode.Created, hold.StatusCode);
        using var voided = await _client.SendAsync(Http.Post($"/transfers/{pendingKey}/void", """{"metadata":{"k":"x","amount":"y"},"amount":5}"""));
        await voided.AssertProblem(HttpStatusCode.BadRequest, "invalid_field");
        Assert.Equal("pending", (await _client.GetFromJsonAsync<JsonElement>($"/transfers/{pendingKey}")).GetProperty("status").GetString());
        Assert.Equal((950L, 0L), (await _client.Available(a), await _client.Available(b)));
    }

    [Fact]
    public async Task The_openapi_document_shows_legs_and_metadata()
    {
        var document = await _client.GetStringAsync("/openapi/v1.json");

        foreach (var expected in new[] { "\"legs\"", "\"metadata\"", "failed_leg", "LegBody" })
        {
            Assert.Contains(expected, document, StringComparison.Ordinal);
        }
    }
}
