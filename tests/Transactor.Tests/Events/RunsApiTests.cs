using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Transactor.Api.Http;
using Transactor.Api.Runs;
using Transactor.Tests.Api;

namespace Transactor.Tests.Events;

/// <summary>The runs API's bounds over real HTTP: run ids, runs executing at once, and the rate of starts per key.</summary>
[Collection(LiveApiTestGroup.Name)]
public sealed class RunsApiTests(LiveApiFixture api)
{
    [Fact]
    public async Task Runs_get_128_bit_ids_and_a_third_run_at_once_is_refused_with_409()
    {
        using var http = await WithNewAdminKey("runs-409");
        var first = await Start(http, """{"count":10000000,"accounts":2,"name":"bound 1"}""");
        var second = await Start(http, """{"count":10000000,"accounts":2,"name":"bound 2"}""");
        try
        {
            foreach (var id in new[] { first, second })
            {
                Assert.Matches("^[0-9a-f]{32}$", id);
            }

            Assert.NotEqual(first, second);
            using var third = await http.SendAsync(Http.Post("runs", """{"count":10,"accounts":2}"""));
            await third.AssertProblem(HttpStatusCode.Conflict, "too_many_runs");
        }
        finally
        {
            foreach (var id in new[] { first, second })
            {
                using var cancel = await http.PostAsync($"runs/{id}/cancel", null);
            }
        }

        // Cancelled: both end, and their books balance.
        foreach (var id in new[] { first, second })
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            JsonElement run;
            while ((run = await (await http.GetAsync($"runs/{id}")).Body()).GetProperty("state").GetString() is not ("cancelled" or "done" or "failed"))
            {
                Assert.True(DateTime.UtcNow < deadline, $"run {id} did not end within 30 s of its cancel: {run}");
                await Task.Delay(100);
            }

            Assert.Equal("cancelled", run.GetProperty("state").GetString());
            Assert.True(run.GetProperty("books").GetProperty("balanced").GetBoolean(), run.ToString());
        }
    }

    [Fact]
    public async Task Starting_runs_faster_than_the_key_may_gets_429_with_Retry_After_and_other_keys_are_not_held_up()
    {
        using var flooder = await WithNewAdminKey("runs-flooder");
        using var calm = await WithNewAdminKey("runs-calm");

        // An invalid body still spends a start: the limit applies before the request is read.
        const string invalid = """{"count":0}""";
        for (var i = 0; i < new RunLimitOptions().StartsPerMinute; i++)
        {
            using var refused = await flooder.SendAsync(Http.Post("runs", invalid));
            await refused.AssertProblem(HttpStatusCode.BadRequest, "invalid_field");
        }

        using var limited = await flooder.SendAsync(Http.Post("runs", invalid));
        await limited.AssertProblem(HttpStatusCode.TooManyRequests, "rate_limited");
        Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 1);

        // Another key has its own bucket; and the flooder's other requests are not limited by it.
        using var other = await calm.SendAsync(Http.Post("runs", invalid));
        await other.AssertProblem(HttpStatusCode.BadRequest, "invalid_field");
        using var list = await flooder.GetAsync("runs");
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
    }

    private static async Task<string> Start(HttpClient http, string body)
    {
        using var response = await http.SendAsync(Http.Post("runs", body));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Body()).GetProperty("id").GetString()!;
    }

    private async Task<HttpClient> WithNewAdminKey(string name)
    {
        using var admin = api.Http();
        using var created = await admin.SendAsync(Http.Post("keys", $$"""{"name":"{{name}}","role":"admin"}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var key = (await created.Body()).GetProperty("key").GetString()!;
        var client = api.Http();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }
}
