using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Transactor.Api.Events;
using Transactor.Tests.Api;
using Xunit.Abstractions;

namespace Transactor.Tests.Events;

/// <summary>
/// Runs are the cluster's, not one API instance's (docs/events.md, Runs): two API instances of one
/// ledger, a run launched on one is watched and cancelled from the other, and a run whose executing
/// instance stops, or goes silent, ends as abandoned where everyone sees it.
/// </summary>
[Collection(ApiTestGroup.Name)]
public sealed class RunsAcrossInstancesTests(ApiFixture api, ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_run_launched_on_one_instance_is_watched_and_cancelled_from_another()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var second = api.SecondInstance();
        using var here = Authorized(api.Server.CreateClient(), ApiFixture.AdminKey);
        using var there = Authorized(second.Server.CreateClient(), ApiFixture.AdminKey);
        var executor = second.Services.GetRequiredService<TransferEventLog>().Instance;
        using var metrics = await Sse.Open(here, "events/metrics");

        var name = $"across {Guid.NewGuid():N}"[..20];
        var id = await Start(there, $$"""{"count":10000000,"accounts":50,"name":"{{name}}"}""");
        output.WriteLine($"{clock.Elapsed}: started on the other instance");

        // This instance's viewers see the other's run, with its progress, on the metrics stream and in the API.
        var running = await NextRun(metrics, id, run => run.GetProperty("state").GetString() == "running" && run.GetProperty("done").GetInt64() > 0);
        output.WriteLine($"{clock.Elapsed}: seen running here");
        Assert.Equal(name, running.GetProperty("name").GetString());
        Assert.Equal(executor, running.GetProperty("executor").GetString());
        Assert.Equal(10_000_000, running.GetProperty("count").GetInt64());
        var listed = await (await here.GetAsync("runs")).Body();
        Assert.Contains(listed.EnumerateArray(), r => r.GetProperty("id").GetString() == id);

        // Cancelling needs an admin key, as before; an unknown run is 404.
        using (var client = Authorized(api.Server.CreateClient(), await NewKey(here, "client")))
        {
            using var refused = await client.PostAsync($"runs/{id}/cancel", null);
            await refused.AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        }

        using (var unknown = await here.PostAsync($"runs/{Guid.NewGuid():N}/cancel", null))
        {
            await unknown.AssertProblem(HttpStatusCode.NotFound, "run_not_found");
        }

        // Cancelled here, executed there: it stops, its books are checked, and both instances show the end.
        using (var cancel = await here.PostAsync($"runs/{id}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
            Assert.True((await cancel.Body()).GetProperty("cancel_requested").GetBoolean());
        }

        output.WriteLine($"{clock.Elapsed}: cancelled here");
        var ended = await NextRun(metrics, id, run => run.GetProperty("ended_at").ValueKind != JsonValueKind.Null);
        output.WriteLine($"{clock.Elapsed}: seen ended here");
        Assert.Equal("cancelled", ended.GetProperty("state").GetString());
        Assert.True(ended.GetProperty("books").GetProperty("balanced").GetBoolean(), ended.ToString());
        Assert.InRange(ended.GetProperty("done").GetInt64(), 1, 10_000_000 - 1);
        var seenThere = await (await there.GetAsync($"runs/{id}")).Body();
        Assert.Equal(ended.GetProperty("done").GetInt64(), seenThere.GetProperty("done").GetInt64());
        Assert.Equal("cancelled", seenThere.GetProperty("state").GetString());
    }

    [Fact]
    public async Task A_run_whose_executing_instance_stops_ends_as_abandoned_for_every_viewer()
    {
        using var here = Authorized(api.Server.CreateClient(), ApiFixture.AdminKey);
        string id;
        await using (var doomed = api.SecondInstance(("Transactor:Runs:ReportLease", "00:00:02")))
        {
            using var there = Authorized(doomed.Server.CreateClient(), ApiFixture.AdminKey);
            id = await Start(there, """{"count":10000000,"accounts":20,"name":"doomed"}""");
            await WaitForRun(here, id, run => run.GetProperty("state").GetString() == "running" && run.GetProperty("done").GetInt64() > 0);
        }

        // Its process stopped mid-run: the run ends as abandoned (reported on the way out, or by the
        // registry once the lease ran out), with no books check; its transfers that ended stand.
        var ended = await WaitForRun(here, id, run => run.GetProperty("ended_at").ValueKind != JsonValueKind.Null);
        Assert.Equal("abandoned", ended.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, ended.GetProperty("books").ValueKind);
        Assert.Contains("stopped", ended.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    /// <summary>An executor that dies cannot say so: it only stops reporting. The registry ends its run one lease later.</summary>
    [Fact]
    public async Task A_run_whose_executor_goes_silent_ends_as_abandoned_and_a_late_report_is_told_to_stop()
    {
        using var here = Authorized(api.Server.CreateClient(), ApiFixture.AdminKey);
        var registry = api.Services.GetRequiredService<IClusterClient>().Runs();
        var run = new RunView(Guid.CreateVersion7().ToString("N"), "silent", 1_000, 2, "running", false, 10, 10, 0, 0, 100, 0.1, DateTimeOffset.UtcNow, null, null, null, "deadbeef");
        Assert.True(await registry.Register(run, TimeSpan.FromSeconds(1)));
        Assert.Equal(RunVerdict.Continue, await registry.Report(run with { Done = 20, Committed = 20 }, TimeSpan.FromSeconds(1)));

        var ended = await WaitForRun(here, run.Id, r => r.GetProperty("ended_at").ValueKind != JsonValueKind.Null);
        Assert.Equal("abandoned", ended.GetProperty("state").GetString());
        Assert.Equal(20, ended.GetProperty("done").GetInt64());
        Assert.Contains("deadbeef", ended.GetProperty("error").GetString(), StringComparison.Ordinal);

        // The executor was only cut off, and comes back: the verdict stands, and it stops.
        Assert.Equal(RunVerdict.Stop, await registry.Report(run with { Done = 30 }, TimeSpan.FromSeconds(1)));
        Assert.Equal("abandoned", (await registry.Get(run.Id))!.State);
    }

    private static async Task<JsonElement> NextRun(Sse metrics, string id, Func<JsonElement, bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            Assert.True(left > TimeSpan.Zero, $"run {id} did not get there on the metrics stream");
            var item = (await metrics.Read(1, left))[0];
            var runs = item.Type switch
            {
                "run" => new[] { item.Data },
                "metrics" => item.Data.GetProperty("runs").EnumerateArray().ToArray(),
                _ => Array.Empty<JsonElement>(),
            };
            if (runs.FirstOrDefault(r => r.GetProperty("id").GetString() == id && condition(r)) is { ValueKind: JsonValueKind.Object } run)
            {
                return run;
            }
        }
    }

    private static async Task<JsonElement> WaitForRun(HttpClient http, string id, Func<JsonElement, bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            using var response = await http.GetAsync($"runs/{id}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var run = await response.Body();
            if (condition(run))
            {
                return run;
            }

            Assert.True(DateTime.UtcNow < deadline, $"run {id} did not get there: {run}");
            await Task.Delay(100);
        }
    }

    private static async Task<string> Start(HttpClient http, string body)
    {
        using var response = await http.SendAsync(Http.Post("runs", body));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Body()).GetProperty("id").GetString()!;
    }

    private static async Task<string> NewKey(HttpClient admin, string role)
    {
        using var created = await admin.SendAsync(Http.Post("keys", $$"""{"name":"runs-{{role}}","role":"{{role}}"}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return (await created.Body()).GetProperty("key").GetString()!;
    }

    private static HttpClient Authorized(HttpClient client, string key)
    {
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }
}
