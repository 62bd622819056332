using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Transactor.Tests.Api;

[Collection(ApiTestGroup.Name)]
public sealed class TransfersApiTests(ApiFixture api)
{
    private readonly HttpClient _client = api.CreateClient();

    [Fact]
    public async Task Transfer_returns_201_with_status_and_resulting_balances()
    {
        var (from, to) = (await _client.OpenAccount(10_000), await _client.OpenAccount());
        var key = $"t-{Guid.NewGuid():N}";

        using var response = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":2500,"currency":"USD"}""", key));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.Body();
        Assert.Equal(key, body.GetProperty("id").GetString());
        Assert.Equal("committed", body.GetProperty("status").GetString());
        Assert.Equal(7_500, body.GetProperty("from_account").GetProperty("available").GetInt64());
        Assert.Equal(2_500, body.GetProperty("to_account").GetProperty("available").GetInt64());
        var read = await _client.GetFromJsonAsync<JsonElement>($"/transfers/{key}");
        Assert.Equal("committed", read.GetProperty("status").GetString());
        Assert.Equal((7_500L, 2_500L), (await _client.Available(from), await _client.Available(to)));
    }

    [Fact]
    public async Task Simple_transfer_shape_takes_the_currency_from_the_accounts()
    {
        var (from, to) = (await _client.OpenAccount(1_000, "EUR"), await _client.OpenAccount(0, "EUR"));

        using var response = await _client.SendAsync(Http.Post("/transfer", $$"""{"from":"{{from}}","to":"{{to}}","amount":400}""", $"t-{Guid.NewGuid():N}"));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("EUR", (await response.Body()).GetProperty("currency").GetString());
        Assert.Equal(600, await _client.Available(from));
    }

    [Fact]
    public async Task Same_key_same_body_replays_the_original_answer_byte_for_byte()
    {
        var (from, to) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var key = $"t-{Guid.NewGuid():N}";
        var json = $$"""{"from":"{{from}}","to":"{{to}}","amount":100,"currency":"USD"}""";

        using var first = await _client.SendAsync(Http.Post("/transfers", json, key));
        using var second = await _client.SendAsync(Http.Post("/transfers", json.Replace(",", ", ", StringComparison.Ordinal), key));

        Assert.Equal(HttpStatusCode.Created, second.StatusCode);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await first.Content.ReadAsStringAsync(), await second.Content.ReadAsStringAsync());
        Assert.Equal(900, await _client.Available(from));
    }

    [Fact]
    public async Task A_rejection_is_replayed_with_its_original_status()
    {
        var (from, to) = (await _client.OpenAccount(100), await _client.OpenAccount());
        var key = $"t-{Guid.NewGuid():N}";
        var json = $$"""{"from":"{{from}}","to":"{{to}}","amount":500,"currency":"USD"}""";

        using var first = await _client.SendAsync(Http.Post("/transfers", json, key));
        using var deposit = await _client.SendAsync(Http.Post($"/accounts/{from}/deposits", """{"amount":1000}""", $"d-{Guid.NewGuid():N}"));
        using var retry = await _client.SendAsync(Http.Post("/transfers", json, key));

        await first.AssertProblem(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        await retry.AssertProblem(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        Assert.Equal(1_100, await _client.Available(from));
    }

    [Fact]
    public async Task Same_key_different_body_is_422_idempotency_key_reused()
    {
        var (from, to) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var key = $"t-{Guid.NewGuid():N}";

        using var first = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":100,"currency":"USD"}""", key));
        using var reused = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":101,"currency":"USD"}""", key));

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        await reused.AssertProblem(HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");
        Assert.Equal((900L, 100L), (await _client.Available(from), await _client.Available(to)));
    }

    [Fact]
    public async Task Concurrent_requests_with_one_key_execute_once_and_all_see_the_result()
    {
        var (from, to) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var key = $"t-{Guid.NewGuid():N}";
        var json = $$"""{"from":"{{from}}","to":"{{to}}","amount":250,"currency":"USD"}""";

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => _client.SendAsync(Http.Post("/transfers", json, key))));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));
        Assert.Single(responses, r => !r.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal((750L, 250L), (await _client.Available(from), await _client.Available(to)));
        foreach (var r in responses)
        {
            r.Dispose();
        }
    }

    public static TheoryData<string, string, HttpStatusCode, string> BadTransfers() => new()
    {
        { "malformed JSON", """{"from":"{A}","to":"{B}","amount":10,""", HttpStatusCode.BadRequest, "malformed_json" },
        { "not an object", """[1,2]""", HttpStatusCode.BadRequest, "malformed_json" },
        { "missing amount", """{"from":"{A}","to":"{B}","currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_field" },
        { "missing currency", """{"from":"{A}","to":"{B}","amount":10}""", HttpStatusCode.BadRequest, "invalid_field" },
        { "unknown field", """{"from":"{A}","to":"{B}","amount":10,"currency":"USD","memo":"x"}""", HttpStatusCode.BadRequest, "invalid_field" },
        { "null amount", """{"from":"{A}","to":"{B}","amount":null,"currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_field" },
        { "zero amount", """{"from":"{A}","to":"{B}","amount":0,"currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "negative amount", """{"from":"{A}","to":"{B}","amount":-10,"currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "amount over the limit", """{"from":"{A}","to":"{B}","amount":1000000000000001,"currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "amount over 64 bits", """{"from":"{A}","to":"{B}","amount":99999999999999999999,"currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "decimal amount", """{"from":"{A}","to":"{B}","amount":10.5,"currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "exponent amount", """{"from":"{A}","to":"{B}","amount":1e3,"currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "string amount", """{"from":"{A}","to":"{B}","amount":"10","currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_amount" },
        { "bad currency", """{"from":"{A}","to":"{B}","amount":10,"currency":"dollars"}""", HttpStatusCode.BadRequest, "invalid_field" },
        { "bad account id", """{"from":"{A}","to":"no/such","amount":10,"currency":"USD"}""", HttpStatusCode.BadRequest, "invalid_field" },
        { "unknown account", """{"from":"{A}","to":"nobody-{B}","amount":10,"currency":"USD"}""", HttpStatusCode.NotFound, "account_not_found" },
        { "same account", """{"from":"{A}","to":"{A}","amount":10,"currency":"USD"}""", HttpStatusCode.UnprocessableEntity, "same_account" },
        { "currency mismatch", """{"from":"{A}","to":"{B}","amount":10,"currency":"EUR"}""", HttpStatusCode.UnprocessableEntity, "currency_mismatch" },
        { "insufficient funds", """{"from":"{A}","to":"{B}","amount":1001,"currency":"USD"}""", HttpStatusCode.UnprocessableEntity, "insufficient_funds" },
    };

    [Theory]
    [MemberData(nameof(BadTransfers))]
    public async Task Bad_transfer_gets_a_problem_and_moves_nothing(string what, string template, HttpStatusCode status, string code)
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var json = template.Replace("{A}", a, StringComparison.Ordinal).Replace("{B}", b, StringComparison.Ordinal);

        using var response = await _client.SendAsync(Http.Post("/transfers", json, $"t-{Guid.NewGuid():N}"));

        var problem = await response.AssertProblem(status, code);
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()), what);
        Assert.Equal((1_000L, 0L), (await _client.Available(a), await _client.Available(b)));
    }

    [Theory]
    [InlineData(null, "idempotency_key_missing")]
    [InlineData("", "idempotency_key_missing")]
    [InlineData("tab\there", "idempotency_key_invalid")]
    [InlineData("orders/42", "idempotency_key_invalid")]
    [InlineData("50%2Foff", "idempotency_key_invalid")]
    public async Task Money_moving_requests_need_a_valid_idempotency_key(string? key, string code)
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var request = Http.Post("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":10,"currency":"USD"}""");
        if (key is not null)
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        }

        using var response = await _client.SendAsync(request);

        await response.AssertProblem(HttpStatusCode.BadRequest, code);
        Assert.Equal(1_000, await _client.Available(a));
    }

    [Fact]
    public async Task Idempotency_key_over_255_characters_is_refused()
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());

        using var ok = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":10,"currency":"USD"}""", new string('k', 200) + Guid.NewGuid().ToString("N")[..20]));
        using var tooLong = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":10,"currency":"USD"}""", new string('k', 256)));

        Assert.Equal(HttpStatusCode.Created, ok.StatusCode);
        await tooLong.AssertProblem(HttpStatusCode.BadRequest, "idempotency_key_invalid");
        Assert.Equal(990, await _client.Available(a));
    }

    /// <summary>Every character a key may hold survives the trip through the movement's URL: its Location reads it back.</summary>
    [Theory]
    [InlineData("order 42?x=1#frag")]
    [InlineData("a+b&c=d;e:f@g!h*i(j)k'l,m$n")]
    [InlineData("tilde~back\\slash\"quote\"<>[]{}|^`")]
    public async Task The_location_of_a_movement_reads_it_back_for_every_allowed_key_character(string prefix)
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var key = $"{prefix} {Guid.NewGuid():N}";

        using var created = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":10,"currency":"USD"}""", key));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using var read = await _client.GetAsync(created.Headers.Location);

        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        using var body = JsonDocument.Parse(await read.Content.ReadAsStringAsync());
        Assert.Equal(key, body.RootElement.GetProperty("id").GetString());
    }

    [Fact]
    public async Task Oversized_body_is_413()
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        // POST /transfers takes up to 64 KiB (a linked transfer's 100 legs); the other bodies 16 KiB.
        var json = $$"""{"from":"{{a}}","to":"{{b}}","amount":10,"currency":"USD","pad":"{{new string(' ', 70_000)}}"}""";

        using var response = await _client.SendAsync(Http.Post("/transfers", json, $"t-{Guid.NewGuid():N}"));

        await response.AssertProblem(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        Assert.Equal(1_000, await _client.Available(a));
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    public async Task Wrong_content_type_is_415(string contentType)
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        var request = new HttpRequestMessage(HttpMethod.Post, "/transfers")
        {
            Content = new StringContent($$"""{"from":"{{a}}","to":"{{b}}","amount":10,"currency":"USD"}""", Encoding.UTF8, contentType),
        };
        request.Headers.Add("Idempotency-Key", $"t-{Guid.NewGuid():N}");

        using var response = await _client.SendAsync(request);

        await response.AssertProblem(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        Assert.Equal(1_000, await _client.Available(a));
    }

    [Fact]
    public async Task Unknown_transfer_is_404()
    {
        using var response = await _client.GetAsync($"/transfers/none-{Guid.NewGuid():N}");

        await response.AssertProblem(HttpStatusCode.NotFound, "transfer_not_found");
    }
}
