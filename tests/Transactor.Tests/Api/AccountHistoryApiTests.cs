using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Transactor.Tests.Api;

/// <summary>History (<c>/entries</c>, <c>/balance?at=</c>) and limits (overdraft, credit limit) over HTTP.</summary>
[Collection(ApiTestGroup.Name)]
public sealed class AccountHistoryApiTests(ApiFixture api)
{
    private readonly HttpClient _client = api.CreateClient();

    [Fact]
    public async Task Entries_list_every_change_in_order_and_page_through_the_cursor()
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        for (var i = 1; i <= 5; i++)
        {
            await Transfer(a, b, i * 10);
        }

        using (var withdrawal = await _client.SendAsync(Http.Post($"/accounts/{a}/withdrawals", """{"amount":100}""", $"w-{Guid.NewGuid():N}")))
        {
            Assert.Equal(HttpStatusCode.Created, withdrawal.StatusCode);
        }

        var all = await Get($"/accounts/{a}/entries");
        Assert.Equal(7, all.GetProperty("count").GetInt64());
        Assert.Equal(JsonValueKind.Null, all.GetProperty("next").ValueKind);
        var items = all.GetProperty("items").EnumerateArray().ToArray();
        Assert.Equal(
            [("deposit", 1_000L, 1_000L), ("transfer_out", 10L, 990L), ("transfer_out", 20L, 970L), ("transfer_out", 30L, 940L), ("transfer_out", 40L, 900L), ("transfer_out", 50L, 850L), ("withdrawal", 100L, 750L)],
            items.Select(e => (e.GetProperty("kind").GetString(), e.GetProperty("amount").GetInt64(), e.GetProperty("available").GetInt64())));
        Assert.Equal(b, items[1].GetProperty("counterparty").GetString());
        Assert.Equal(Enumerable.Range(1, 7).Select(i => (long)i), items.Select(e => e.GetProperty("sequence").GetInt64()));

        // Three at a time: the cursor of each page leads to the next, and the last page has none.
        var paged = new List<long>();
        string? next = null;
        var pages = 0;
        do
        {
            var page = await Get($"/accounts/{a}/entries?limit=3" + (next is null ? "" : $"&after={next}"));
            paged.AddRange(page.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("sequence").GetInt64()));
            next = page.GetProperty("next").GetString();
            pages++;
        }
        while (next is not null && pages < 10);

        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(1, 7).Select(i => (long)i), paged);
        var credited = (await Get($"/accounts/{b}/entries")).GetProperty("items").EnumerateArray().ToArray();
        Assert.Equal(["transfer_in"], credited.Select(e => e.GetProperty("kind").GetString()).Distinct());
        Assert.Equal(150L, credited[^1].GetProperty("available").GetInt64());
    }

    [Fact]
    public async Task Balance_at_a_past_instant_is_the_balance_after_the_last_entry_before_it()
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        await Transfer(a, b, 300);
        var entries = (await Get($"/accounts/{a}/entries")).GetProperty("items").EnumerateArray().ToArray();
        var depositAt = entries[0].GetProperty("at").GetDateTimeOffset();
        var transferAt = entries[1].GetProperty("at").GetDateTimeOffset();
        Assert.True(transferAt > depositAt);

        var between = await Get($"/accounts/{a}/balance?at={Uri.EscapeDataString((depositAt + ((transferAt - depositAt) / 2)).ToString("O"))}");
        Assert.Equal((1L, 1_000L, 1_000L), (between.GetProperty("sequence").GetInt64(), between.GetProperty("available").GetInt64(), between.GetProperty("total").GetInt64()));
        var now = await Get($"/accounts/{a}/balance?at={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(1).ToString("O"))}");
        Assert.Equal((2L, 700L), (now.GetProperty("sequence").GetInt64(), now.GetProperty("available").GetInt64()));
        // An unescaped '+' arrives as a space; it still reads as the offset it was.
        var plus = await Get($"/accounts/{a}/balance?at={transferAt.ToOffset(TimeSpan.FromHours(1)):yyyy-MM-ddTHH:mm:ss.fffffff+01:00}");
        Assert.Equal(700L, plus.GetProperty("available").GetInt64());

        using var before = await _client.GetAsync($"/accounts/{a}/balance?at=2000-01-01T00:00:00Z");
        await before.AssertProblem(HttpStatusCode.NotFound, "before_account_opened");
    }

    public static TheoryData<string, string, string> BadQueries() => new()
    {
        { "entries?limit=0", "invalid_limit", "limit" },
        { "entries?limit=1001", "invalid_limit", "limit" },
        { "entries?limit=ten", "invalid_limit", "limit" },
        { "entries?limit=-1", "invalid_limit", "limit" },
        { "entries?after=not-a-cursor", "invalid_cursor", "after" },
        { "entries?after=ZTE6LTE", "invalid_cursor", "after" },
        { "entries?after=eDE6NQ", "invalid_cursor", "after" },
        { "balance", "invalid_timestamp", "at" },
        { "balance?at=yesterday", "invalid_timestamp", "at" },
        { "balance?at=12/05/2026", "invalid_timestamp", "at" },
        { "balance?at=2026-12-05T10:00:00", "invalid_timestamp", "at" },
        { "balance?at=2026-13-05T10:00:00Z", "invalid_timestamp", "at" },
        { "entries?metadata=o-1", "invalid_metadata_filter", "metadata" },
        { "entries?metadata[orderId]=o-1", "invalid_metadata_filter", "metadata" },
        { "entries?metadataOrderId=o-1", "invalid_metadata_filter", "metadata" },
        { "entries?metadata.=o-1", "invalid_metadata_filter", "metadata.*" },
        { "entries?metadata.order%20id=o-1", "invalid_metadata_filter", "metadata.*" },
        { "entries?metadata." + new string('k', MetadataMap.MaxKeyLength + 1) + "=o-1", "invalid_metadata_filter", "metadata.*" },
        { "entries?metadata.orderId=o-1&metadata.orderId=o-2", "invalid_metadata_filter", "metadata.orderId" },
        { "entries?metadata.orderId=" + new string('v', MetadataMap.MaxValueLength + 1), "invalid_metadata_filter", "metadata.orderId" },
        { "entries?metadata.orderId=o%0A1", "invalid_metadata_filter", "metadata.orderId" },
        { "entries?" + string.Join("&", Enumerable.Range(0, MetadataMap.MaxEntries + 1).Select(i => $"metadata.k{i}=v")), "invalid_metadata_filter", "metadata" },
    };

    [Theory]
    [MemberData(nameof(BadQueries))]
    public async Task A_malformed_query_is_400_with_its_code_and_changes_nothing(string query, string code, string field)
    {
        var (a, b) = (await _client.OpenAccount(1_000), await _client.OpenAccount());
        await Transfer(a, b, 10);
        var before = await Get($"/accounts/{a}");

        using var response = await _client.GetAsync($"/accounts/{a}/{query}");

        var problem = await response.AssertProblem(HttpStatusCode.BadRequest, code);
        Assert.Equal(field, problem.GetProperty("field").GetString());
        Assert.Equal(before.GetRawText(), (await Get($"/accounts/{a}")).GetRawText());
    }

    [Fact]
    public async Task Entries_filtered_by_metadata_list_only_the_movements_that_carry_every_pair()
    {
        var (a, b, c) = (await _client.OpenAccount(1_000), await _client.OpenAccount(), await _client.OpenAccount());
        const string Web = """{"orderId":"o-1","channel":"web"}""";
        await Created("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":100,"currency":"USD","metadata":{{Web}}}""");
        await Created("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":50,"currency":"USD"}""");
        await Created($"/accounts/{a}/deposits", """{"amount":20,"metadata":{"orderId":"o-1","channel":"app","note":"a b&c"}}""");
        await Created($"/accounts/{a}/withdrawals", """{"amount":30,"metadata":{"orderId":"o-2"}}""");
        var hold = $"hold-{Guid.NewGuid():N}";
        await Created("/transfers", $$"""{"from":"{{a}}","to":"{{b}}","amount":200,"currency":"USD","pending":true,"metadata":{{Web}}}""", hold);
        await Ended($"/transfers/{hold}/post", $$"""{"amount":150,"metadata":{{Web}}}""");
        var voided = $"hold-{Guid.NewGuid():N}";
        await Created("/transfers", $$$"""{"from":"{{{a}}}","to":"{{{c}}}","amount":40,"currency":"USD","pending":true,"metadata":{"orderId":"o-1"}}""", voided);
        await Ended($"/transfers/{voided}/void", "{}");
        await Created("/transfers", $$"""{"legs":[{"from":"{{a}}","to":"{{b}}","amount":10,"currency":"USD"},{"from":"{{a}}","to":"{{c}}","amount":5,"currency":"USD"}],"metadata":{{Web}}}""");

        // a: 1 the opening deposit, 2 out 100 (web), 3 out 50, 4 deposit (app), 5 withdrawal (o-2), 6 hold (web), 7 post (web), 8 hold (o-1), 9 void (none), 10 linked (web).
        var byOrder = await Get($"/accounts/{a}/entries?metadata.orderId=o-1");
        Assert.Equal(
            [(2L, "transfer_out"), (4L, "deposit"), (6L, "hold_out"), (7L, "post_out"), (8L, "hold_out"), (10L, "transfer_out")],
            byOrder.GetProperty("items").EnumerateArray().Select(e => (e.GetProperty("sequence").GetInt64(), e.GetProperty("kind").GetString())));
        Assert.All(byOrder.GetProperty("items").EnumerateArray(), e => Assert.Equal("o-1", e.GetProperty("metadata").GetProperty("orderId").GetString()));
        Assert.Equal((JsonValueKind.Null, 10L), (byOrder.GetProperty("next").ValueKind, byOrder.GetProperty("count").GetInt64()));

        Assert.Equal([2L, 6L, 7L, 10L], await FilteredSequences($"/accounts/{a}/entries?metadata.orderId=o-1&metadata.channel=web", limit: 1, pages: 4));
        Assert.Equal([4L], await FilteredSequences($"/accounts/{a}/entries?metadata.note=a%20b%26c", limit: 100, pages: 1));
        Assert.Equal([5L], await FilteredSequences($"/accounts/{a}/entries?Metadata.orderId=o-2", limit: 100, pages: 1));
        // Keys compare exactly, case included; entries without metadata match no filter.
        Assert.Empty(await FilteredSequences($"/accounts/{a}/entries?metadata.orderid=o-1", limit: 100, pages: 1));
        Assert.Empty(await FilteredSequences($"/accounts/{a}/entries?metadata.orderId=o-3", limit: 100, pages: 1));
        var unfiltered = (await Get($"/accounts/{a}/entries")).GetProperty("items");
        Assert.Equal(JsonValueKind.Null, unfiltered[2].GetProperty("metadata").ValueKind);
        Assert.Equal("a b&c", unfiltered[3].GetProperty("metadata").GetProperty("note").GetString());

        // The other side of each movement carries its metadata too.
        var ofB = (await Get($"/accounts/{b}/entries?metadata.orderId=o-1&metadata.channel=web")).GetProperty("items");
        Assert.Equal(["transfer_in", "hold_in", "post_in", "transfer_in"], ofB.EnumerateArray().Select(e => e.GetProperty("kind").GetString()));
        var ofC = (await Get($"/accounts/{c}/entries?metadata.orderId=o-1")).GetProperty("items");
        Assert.Equal(["hold_in", "transfer_in"], ofC.EnumerateArray().Select(e => e.GetProperty("kind").GetString()));
    }

    [Fact]
    public async Task A_filter_over_a_long_history_answers_bounded_pages_with_a_cursor_to_the_end()
    {
        // A ledger of its own whose filtered reads look at 5 entries each (the default is 1,000).
        await using var ledger = api.WithSettings(("Transactor:Transfers:HistoryScanPerRead", "5"));
        using var client = ledger.CreateClient();
        var id = await client.OpenAccount();
        await Task.WhenAll(Enumerable.Range(0, 22).Select(async i =>
        {
            using var deposit = await client.SendAsync(Http.Post($"/accounts/{id}/deposits", $$$"""{"amount":{{{i + 1}}},"metadata":{"orderId":"o-{{{i}}}"}}""", $"d-{Guid.NewGuid():N}"));
            Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
        }));
        using (var needle = await client.SendAsync(Http.Post($"/accounts/{id}/deposits", """{"amount":7,"metadata":{"orderId":"needle"}}""", $"d-{Guid.NewGuid():N}")))
        {
            Assert.Equal(HttpStatusCode.Created, needle.StatusCode);
        }

        foreach (var (order, expected) in new[] { ("nothing", Array.Empty<long>()), ("needle", new[] { 23L }) })
        {
            var pages = new List<JsonElement>();
            string? next = null;
            do
            {
                using var response = await client.GetAsync($"/accounts/{id}/entries?metadata.orderId={order}&limit=100" + (next is null ? "" : $"&after={next}"));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var page = await response.Body();
                pages.Add(page);
                next = page.GetProperty("next").GetString();
            }
            while (next is not null && pages.Count < 50);

            // 23 entries, 5 looked at a request: 5 requests, each but the last with a cursor and no match.
            Assert.Equal(5, pages.Count);
            Assert.All(pages.SkipLast(1), page => Assert.Equal(0, page.GetProperty("items").GetArrayLength()));
            Assert.Equal(expected, pages.SelectMany(p => p.GetProperty("items").EnumerateArray()).Select(e => e.GetProperty("sequence").GetInt64()));
            Assert.All(pages, page => Assert.Equal(23L, page.GetProperty("count").GetInt64()));
        }

        // Without a filter nothing changes: one page holds every entry.
        using var all = await client.GetAsync($"/accounts/{id}/entries");
        Assert.Equal(23, (await all.Body()).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task The_openapi_document_describes_the_metadata_filter()
    {
        var document = await _client.GetStringAsync("/openapi/v1.json");

        foreach (var expected in new[] { "invalid_metadata_filter", "HistoryScanPerRead", "metadata.orderId" })
        {
            Assert.Contains(expected, document, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task An_account_that_is_not_open_has_no_history_404()
    {
        using var unknown = await _client.GetAsync($"/accounts/nobody-{Guid.NewGuid():N}/entries");
        await unknown.AssertProblem(HttpStatusCode.NotFound, "account_not_found");
        using var unknownAt = await _client.GetAsync($"/accounts/nobody-{Guid.NewGuid():N}/balance?at=2026-12-05T10:00:00Z");
        await unknownAt.AssertProblem(HttpStatusCode.NotFound, "account_not_found");
    }

    [Fact]
    public async Task A_client_key_reads_the_history_of_its_own_accounts_only()
    {
        var theirs = await _client.OpenAccount(100);
        using var client = await ClientWithNewKey("history-reader");
        var mine = $"acct-{Guid.NewGuid():N}";
        using (var open = await client.SendAsync(Http.Post("/accounts", $$"""{"id":"{{mine}}","currency":"USD"}""")))
        {
            Assert.Equal(HttpStatusCode.Created, open.StatusCode);
        }

        using (var own = await client.GetAsync($"/accounts/{mine}/entries"))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        }

        using var other = await client.GetAsync($"/accounts/{theirs}/entries");
        await other.AssertProblem(HttpStatusCode.Forbidden, "not_owner");
        using var otherAt = await client.GetAsync($"/accounts/{theirs}/balance?at=2026-12-05T10:00:00Z");
        await otherAt.AssertProblem(HttpStatusCode.Forbidden, "not_owner");

        // Only an admin grants an overdraft, at opening or later.
        using var overdraft = await client.SendAsync(Http.Post("/accounts", $$"""{"id":"acct-{{Guid.NewGuid():N}}","currency":"USD","allow_overdraft":true,"credit_limit":100}"""));
        await overdraft.AssertProblem(HttpStatusCode.Forbidden, "limits_not_allowed");
        using var put = await client.PutAsync($"/accounts/{mine}/limits", Http.Json("""{"allow_overdraft":true,"credit_limit":100}"""));
        Assert.Equal(HttpStatusCode.Forbidden, put.StatusCode);
        Assert.False((await Get($"/accounts/{mine}")).GetProperty("allow_overdraft").GetBoolean());
    }

    [Fact]
    public async Task An_overdraft_lets_available_go_down_to_minus_the_credit_limit_and_no_further()
    {
        var id = $"acct-{Guid.NewGuid():N}";
        using (var open = await _client.SendAsync(Http.Post("/accounts", $$"""{"id":"{{id}}","currency":"USD","allow_overdraft":true,"credit_limit":500}""")))
        {
            Assert.Equal(HttpStatusCode.Created, open.StatusCode);
            var body = await open.Body();
            Assert.Equal((true, 500L), (body.GetProperty("allow_overdraft").GetBoolean(), body.GetProperty("credit_limit").GetInt64()));
        }

        var to = await _client.OpenAccount();
        await Transfer(id, to, 300);
        using (var over = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{id}}","to":"{{to}}","amount":201,"currency":"USD"}""", $"t-{Guid.NewGuid():N}")))
        {
            await over.AssertProblem(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        }

        await Transfer(id, to, 200);
        var account = await Get($"/accounts/{id}");
        Assert.Equal((-500L, -500L), (account.GetProperty("available").GetInt64(), account.GetProperty("total").GetInt64()));
        Assert.Equal(-500L, (await Get($"/accounts/{id}/entries")).GetProperty("items")[1].GetProperty("available").GetInt64());

        // Lowering the limit below the balance is refused; raising it lets more through.
        using (var lower = await _client.PutAsync($"/accounts/{id}/limits", Http.Json("""{"allow_overdraft":true,"credit_limit":499}""")))
        {
            await lower.AssertProblem(HttpStatusCode.Conflict, "balance_below_limit");
        }

        using (var strict = await _client.PutAsync($"/accounts/{id}/limits", Http.Json("""{"debits_must_not_exceed_credits":true}""")))
        {
            await strict.AssertProblem(HttpStatusCode.Conflict, "balance_below_limit");
        }

        using (var raise = await _client.PutAsync($"/accounts/{id}/limits", Http.Json("""{"allow_overdraft":true,"credit_limit":600}""")))
        {
            Assert.Equal(HttpStatusCode.OK, raise.StatusCode);
            Assert.Equal(600L, (await raise.Body()).GetProperty("credit_limit").GetInt64());
        }

        await Transfer(id, to, 100);
        Assert.Equal(-600L, await _client.Available(id));
        Assert.Equal(600L, await _client.Available(to));
    }

    public static TheoryData<string, string> BadLimits() => new()
    {
        { """{"allow_overdraft":true}""", "invalid_field" },
        { """{"allow_overdraft":true,"credit_limit":-1}""", "invalid_field" },
        { """{"allow_overdraft":true,"credit_limit":1000000000000001}""", "invalid_field" },
        { """{"credit_limit":10}""", "invalid_field" },
        { """{"allow_overdraft":"yes","credit_limit":10}""", "invalid_field" },
        { """{"allow_overdraft":true,"credit_limit":10,"debits_must_not_exceed_credits":true}""", "conflicting_limits" },
        { """{"debits_must_not_exceed_credits":false}""", "conflicting_limits" },
        { """{"allow_overdraft":true,"credit_limit":"10"}""", "invalid_field" },
        { """{"overdraft":true}""", "invalid_field" },
    };

    [Theory]
    [MemberData(nameof(BadLimits))]
    public async Task Malformed_limits_are_400_at_opening_and_when_changed_and_change_nothing(string limits, string code)
    {
        var id = $"acct-{Guid.NewGuid():N}";
        using (var open = await _client.SendAsync(Http.Post("/accounts", $$"""{"id":"{{id}}","currency":"USD",{{limits[1..^1]}}}""")))
        {
            await open.AssertProblem(HttpStatusCode.BadRequest, code);
        }

        using (var missing = await _client.GetAsync($"/accounts/{id}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        var existing = await _client.OpenAccount(100);
        var before = await Get($"/accounts/{existing}");
        using (var put = await _client.PutAsync($"/accounts/{existing}/limits", Http.Json(limits)))
        {
            await put.AssertProblem(HttpStatusCode.BadRequest, code);
        }

        Assert.Equal(before.GetRawText(), (await Get($"/accounts/{existing}")).GetRawText());
    }

    private async Task Created(string path, string json, string? key = null)
    {
        using var response = await _client.SendAsync(Http.Post(path, json, key ?? $"k-{Guid.NewGuid():N}"));
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"POST {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    private async Task Ended(string path, string json)
    {
        using var response = await _client.SendAsync(Http.Post(path, json));
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"POST {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    /// <summary>The sequences a filtered listing returns, <paramref name="limit"/> a page through its cursor, in exactly <paramref name="pages"/> pages.</summary>
    private async Task<List<long>> FilteredSequences(string path, int limit, int pages)
    {
        var found = new List<long>();
        string? next = null;
        var read = 0;
        do
        {
            var page = await Get($"{path}&limit={limit}" + (next is null ? "" : $"&after={next}"));
            var items = page.GetProperty("items").EnumerateArray().ToArray();
            Assert.True(items.Length <= limit);
            found.AddRange(items.Select(e => e.GetProperty("sequence").GetInt64()));
            next = page.GetProperty("next").GetString();
            read++;
        }
        while (next is not null && read < 20);

        Assert.Equal(pages, read);
        return found;
    }

    private async Task Transfer(string from, string to, long amount)
    {
        using var response = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":{{amount}},"currency":"USD"}""", $"t-{Guid.NewGuid():N}"));
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    private async Task<JsonElement> Get(string path)
    {
        using var response = await _client.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private async Task<HttpClient> ClientWithNewKey(string name)
    {
        using var created = await _client.SendAsync(Http.Post("/keys", $$"""{"name":"{{name}}","role":"client"}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var client = api.Server.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (await created.Body()).GetProperty("key").GetString());
        return client;
    }
}
