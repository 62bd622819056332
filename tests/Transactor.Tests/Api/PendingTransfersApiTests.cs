using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Transactor.Tests.Api;

/// <summary>Pending (two-phase) transfers over HTTP: the shapes users rely on, and every malformed field refused with nothing changed.</summary>
[Collection(ApiTestGroup.Name)]
public sealed class PendingTransfersApiTests(ApiFixture api)
{
    private readonly HttpClient _client = api.CreateClient();

    [Fact]
    public async Task Pending_then_partial_post_shows_the_hold_and_then_the_posted_amount()
    {
        var (from, to) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var key = $"pt-{Guid.NewGuid():N}";

        using var placed = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":600,"currency":"USD","pending":true,"timeout":"PT1H"}""", key));
        Assert.Equal(HttpStatusCode.Created, placed.StatusCode);
        var body = await placed.Body();
        Assert.Equal(("pending", true, "PT1H"), (body.GetProperty("status").GetString(), body.GetProperty("pending").GetBoolean(), body.GetProperty("timeout").GetString()));
        Assert.Equal((400L, 600L, 1_000L), Balances(body.GetProperty("from_account")));
        Assert.Equal(600L, body.GetProperty("to_account").GetProperty("pending_credit").GetInt64());

        using var posted = await _client.SendAsync(Http.Post($"/transfers/{key}/post", """{"amount":250}"""));
        Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        var post = await posted.Body();
        Assert.Equal(("post", "committed", key), (post.GetProperty("kind").GetString(), post.GetProperty("status").GetString(), post.GetProperty("id").GetString()));
        Assert.Equal((750L, 0L, 750L), Balances(post.GetProperty("from_account")));

        using var again = await _client.SendAsync(Http.Post($"/transfers/{key}/post", """{"amount":250}"""));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        var read = await _client.GetFromJsonAsync<JsonElement>($"/transfers/{key}");
        Assert.Equal(("posted", 250L), (read.GetProperty("status").GetString(), read.GetProperty("posted_amount").GetInt64()));
        Assert.Equal((750L, 250L), (await _client.Available(from), await _client.Available(to)));
    }

    [Fact]
    public async Task Void_without_a_body_releases_the_hold_and_a_later_post_is_409()
    {
        var (from, to) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var key = $"pt-{Guid.NewGuid():N}";
        using var placed = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":300,"currency":"USD","pending":true}""", key));
        Assert.Equal(HttpStatusCode.Created, placed.StatusCode);

        using var voided = await _client.PostAsync($"/transfers/{key}/void", content: null);
        Assert.Equal(HttpStatusCode.OK, voided.StatusCode);
        using var post = await _client.PostAsync($"/transfers/{key}/post", content: null);
        await post.AssertProblem(HttpStatusCode.Conflict, "pending_transfer_already_voided");
        Assert.Equal("voided", (await _client.GetFromJsonAsync<JsonElement>($"/transfers/{key}")).GetProperty("status").GetString());
        Assert.Equal((1_000L, 0L), (await _client.Available(from), await _client.Available(to)));
    }

    public static TheoryData<string, string, string> BadPendingTransfers() => new()
    {
        { "pending as a string", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","pending":"yes"}""", "invalid_field" },
        { "timeout without pending", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","timeout":"PT1M"}""", "invalid_field" },
        { "timeout not ISO 8601", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","pending":true,"timeout":"5 minutes"}""", "invalid_field" },
        { "timeout as a number", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","pending":true,"timeout":60}""", "invalid_field" },
        { "timeout under a second", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","pending":true,"timeout":"PT0.5S"}""", "invalid_field" },
        { "timeout negative", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","pending":true,"timeout":"-PT10S"}""", "invalid_field" },
        { "timeout over 30 days", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","pending":true,"timeout":"P31D"}""", "invalid_field" },
        { "timeout in months", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","pending":true,"timeout":"P1M"}""", "invalid_field" },
    };

    [Theory]
    [MemberData(nameof(BadPendingTransfers))]
    public async Task A_malformed_pending_field_is_400_and_holds_nothing(string what, string template, string code)
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var json = template.Replace("{A}", a, StringComparison.Ordinal).Replace("{B}", b, StringComparison.Ordinal);

        using var response = await _client.SendAsync(Http.Post("/transfers", json, $"pt-{Guid.NewGuid():N}"));

        var problem = await response.AssertProblem(HttpStatusCode.BadRequest, code);
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()), what);
        await AssertUntouched(a, b);
    }

    public static TheoryData<string, string?, HttpStatusCode, string> BadPosts() => new()
    {
        { "amount as a string", """{"amount":"10"}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "amount zero", """{"amount":0}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "amount negative", """{"amount":-5}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "amount decimal", """{"amount":1.5}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "unknown field", """{"amount":10,"memo":"x"}""", HttpStatusCode.BadRequest, "invalid_field" },
        { "not JSON", """{"amount":""", HttpStatusCode.BadRequest, "malformed_json" },
        { "more than held", """{"amount":301}""", HttpStatusCode.UnprocessableEntity, "post_exceeds_pending_amount" },
    };

    [Theory]
    [MemberData(nameof(BadPosts))]
    public async Task A_bad_post_is_a_problem_and_leaves_the_hold_as_it_was(string what, string? json, HttpStatusCode status, string code)
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var key = $"pt-{Guid.NewGuid():N}";
        using var placed = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":300,"currency":"USD","pending":true}""", key));
        Assert.Equal(HttpStatusCode.Created, placed.StatusCode);

        using var response = await _client.SendAsync(Http.Post($"/transfers/{key}/post", json!));

        var problem = await response.AssertProblem(status, code);
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()), what);
        var account = await _client.GetFromJsonAsync<JsonElement>($"/accounts/{a}");
        Assert.Equal((700L, 300L, 1_000L), Balances(account));
        Assert.Equal("pending", (await _client.GetFromJsonAsync<JsonElement>($"/transfers/{key}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Posting_or_voiding_what_is_not_a_pending_transfer_is_404()
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var key = $"t-{Guid.NewGuid():N}";
        using var ordinary = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":100,"currency":"USD"}""", key));
        Assert.Equal(HttpStatusCode.Created, ordinary.StatusCode);

        using var post = await _client.PostAsync($"/transfers/{key}/post", content: null);
        await post.AssertProblem(HttpStatusCode.NotFound, "pending_transfer_not_found");
        using var unknown = await _client.PostAsync($"/transfers/nobody-{Guid.NewGuid():N}/void", content: null);
        await unknown.AssertProblem(HttpStatusCode.NotFound, "pending_transfer_not_found");
        Assert.Equal((900L, 100L), (await _client.Available(a), await _client.Available(b)));
    }

    [Fact]
    public async Task The_openapi_document_shows_pending_transfers()
    {
        var document = await _client.GetStringAsync("/openapi/v1.json");

        foreach (var expected in new[] { "/transfers/{id}/post", "/transfers/{id}/void", "\"pending\"", "\"timeout\"", "pending_debit", "post_exceeds_pending_amount" })
        {
            Assert.Contains(expected, document, StringComparison.Ordinal);
        }
    }

    private async Task AssertUntouched(string a, string b)
    {
        var (from, to) = (await _client.GetFromJsonAsync<JsonElement>($"/accounts/{a}"), await _client.GetFromJsonAsync<JsonElement>($"/accounts/{b}"));
        Assert.Equal((1_000L, 0L, 1_000L), Balances(from));
        Assert.Equal((0L, 0L), (to.GetProperty("available").GetInt64(), to.GetProperty("pending_credit").GetInt64()));
    }

    private static (long Available, long PendingDebit, long Total) Balances(JsonElement account) =>
        (account.GetProperty("available").GetInt64(), account.GetProperty("pending_debit").GetInt64(), account.GetProperty("total").GetInt64());
}
