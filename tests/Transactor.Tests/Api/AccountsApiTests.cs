using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Transactor.Tests.Api;

[Collection(ApiTestGroup.Name)]
public sealed class AccountsApiTests(ApiFixture api)
{
    private readonly HttpClient _client = api.CreateClient();

    [Fact]
    public async Task Open_returns_201_with_zero_balances_and_reopening_is_idempotent()
    {
        var id = $"acct-{Guid.NewGuid():N}";
        var json = $$"""{"id":"{{id}}","currency":"EUR","owner":"Ann"}""";

        using var created = await _client.SendAsync(Http.Post("/accounts", json));
        using var again = await _client.SendAsync(Http.Post("/accounts", json));
        using var conflict = await _client.SendAsync(Http.Post("/accounts", $$"""{"id":"{{id}}","currency":"USD"}"""));

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal($"/accounts/{id}", created.Headers.Location?.ToString());
        var body = await created.Body();
        Assert.Equal("EUR", body.GetProperty("currency").GetString());
        Assert.Equal(0, body.GetProperty("total").GetInt64());
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        await conflict.AssertProblem(HttpStatusCode.Conflict, "account_exists");
    }

    [Theory]
    [InlineData("""{"id":"has space","currency":"USD"}""", "invalid_field")]
    [InlineData("""{"id":"ok","currency":"usd"}""", "invalid_field")]
    [InlineData("""{"id":"ok","currency":"US"}""", "invalid_field")]
    [InlineData("""{"id":"ok"}""", "invalid_field")]
    [InlineData("""{"id":"ok","currency":"USD","colour":"red"}""", "invalid_field")]
    [InlineData("""{"id":7,"currency":"USD"}""", "invalid_field")]
    [InlineData("""{"id":"ok","currency":"USD" """, "malformed_json")]
    [InlineData("""["ok"]""", "malformed_json")]
    public async Task Bad_open_requests_get_400_and_open_nothing(string json, string code)
    {
        using var response = await _client.SendAsync(Http.Post("/accounts", json));

        await response.AssertProblem(HttpStatusCode.BadRequest, code);
        using var check = await _client.GetAsync("/accounts/ok");
        await check.AssertProblem(HttpStatusCode.NotFound, "account_not_found");
    }

    [Fact]
    public async Task Unknown_account_is_404()
    {
        using var response = await _client.GetAsync($"/accounts/nobody-{Guid.NewGuid():N}");

        await response.AssertProblem(HttpStatusCode.NotFound, "account_not_found");
    }

    [Fact]
    public async Task Accounts_are_listed_in_pages()
    {
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await _client.OpenAccount());
        }

        var seen = new List<string>();
        string? after = null;
        do
        {
            var url = after is null ? "/accounts?limit=2" : $"/accounts?limit=2&after={after}";
            var page = await _client.GetFromJsonAsync<JsonElement>(url);
            var items = page.GetProperty("items").EnumerateArray().Select(a => a.GetProperty("id").GetString()!).ToArray();
            Assert.True(items.Length <= 2);
            seen.AddRange(items);
            after = page.GetProperty("next").GetString();
        }
        while (after is not null);

        Assert.Superset(ids.ToHashSet(), seen.ToHashSet());
        Assert.Equal(seen.Order(StringComparer.Ordinal), seen);
        using var tooBig = await _client.GetAsync("/accounts?limit=1000");
        await tooBig.AssertProblem(HttpStatusCode.BadRequest, "invalid_field");
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-1")]
    [InlineData("2.5")]
    public async Task A_page_limit_that_is_not_a_whole_number_is_an_invalid_field(string limit)
    {
        using var response = await _client.GetAsync($"/accounts?limit={limit}");

        var problem = await response.AssertProblem(HttpStatusCode.BadRequest, "invalid_field");
        Assert.Equal("limit", problem.GetProperty("field").GetString());
    }

    [Fact]
    public async Task Deposit_and_withdrawal_move_money_and_replay_by_key()
    {
        var id = await _client.OpenAccount();
        var key = $"dep-{Guid.NewGuid():N}";

        using var deposit = await _client.SendAsync(Http.Post($"/accounts/{id}/deposits", """{"amount":1000}""", key));
        using var replay = await _client.SendAsync(Http.Post($"/accounts/{id}/deposits", """{"amount":1000}""", key));
        using var withdrawal = await _client.SendAsync(Http.Post($"/accounts/{id}/withdrawals", """{"amount":300,"currency":"USD"}""", $"wd-{Guid.NewGuid():N}"));
        using var overdraw = await _client.SendAsync(Http.Post($"/accounts/{id}/withdrawals", """{"amount":701}""", $"wd-{Guid.NewGuid():N}"));

        Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await deposit.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Created, withdrawal.StatusCode);
        await overdraw.AssertProblem(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        Assert.Equal(700, await _client.Available(id));
    }

    [Fact]
    public async Task Deposit_to_unknown_account_is_404()
    {
        using var response = await _client.SendAsync(Http.Post($"/accounts/nobody-{Guid.NewGuid():N}/deposits", """{"amount":10}""", $"k-{Guid.NewGuid():N}"));

        await response.AssertProblem(HttpStatusCode.NotFound, "account_not_found");
    }
}
