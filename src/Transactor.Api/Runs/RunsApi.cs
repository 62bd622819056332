using System.Globalization;
using Transactor.Api.Http;

namespace Transactor.Api.Runs;

/// <summary>Load runs launched from the dashboard (<see cref="RunManager"/>).</summary>
public static class RunsApi
{
    private static readonly string[] StartRequired = ["count"];
    private static readonly string[] StartOptional = ["accounts", "name"];

    public static IEndpointRouteBuilder MapRunsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/runs").WithTags("Runs").RequireAuthorization(Transactor.Api.Security.Roles.AdminPolicy);
        group.MapPost("/", Start).WithSummary("Start a run of transfers between the run's own accounts, executed by this API process and seen by every instance")
            .Accepts<StartRunBody>("application/json").Produces<RunView>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status429TooManyRequests)
            .RequireRateLimiting(LedgerRateLimits.RunsPolicy);
        group.MapGet("/", async (RunManager runs) => TypedResults.Ok(await runs.Views())).WithSummary("The runs of the whole cluster, newest first");
        group.MapGet("/{id}", async (string id, RunManager runs) => await runs.Find(id) is { } run ? Results.Ok(run) : RunNotFound(id))
            .WithSummary("One run, whichever API instance executes it");
        group.MapPost("/{id}/cancel", async (string id, RunManager runs) => await runs.Cancel(id) is { } run ? Results.Ok(run) : RunNotFound(id))
            .WithSummary("Stop a run, whichever API instance executes it: transfers in flight end, no new ones start, the books are checked. An ended run is answered as it is");
        return app;
    }

    private static async Task<IResult> Start(HttpRequest request, RunManager runs, CancellationToken cancellation)
    {
        var (body, problem) = await JsonBody.Read(request, StartRequired, StartOptional, cancellation);
        if (body is null)
        {
            return problem!;
        }

        if (!body.TryLong("count", out var count, out problem) || !body.TryLong("accounts", out var accounts, out problem) || !body.TryString("name", out var name, out problem))
        {
            return problem!;
        }

        if (count is < 1 or > RunManager.MaxCount)
        {
            return Problems.InvalidField("count", string.Create(CultureInfo.InvariantCulture, $"The count is a whole number from 1 to {RunManager.MaxCount}."));
        }

        accounts ??= 1_000;
        if (accounts is < RunManager.MinAccounts or > RunManager.MaxAccounts)
        {
            return Problems.InvalidField("accounts", string.Create(CultureInfo.InvariantCulture, $"The accounts are a whole number from {RunManager.MinAccounts} to {RunManager.MaxAccounts}."));
        }

        name = string.IsNullOrWhiteSpace(name) ? null : name.Trim();
        if (name is { Length: > RunManager.MaxNameLength } || (name is not null && name.Any(char.IsControl)))
        {
            return Problems.InvalidField("name", $"The name is at most {RunManager.MaxNameLength} printable characters.");
        }

        var run = await runs.Start(count!.Value, (int)accounts.Value, name);
        return run is null
            ? Problems.Create(StatusCodes.Status409Conflict, "too_many_runs", "Too many runs.",
                $"At most {RunManager.MaxActiveRuns} runs execute at once per API instance, and {LedgerRuns.MaxKept} in the cluster; cancel one or wait for it to end.")
            : TypedResults.Accepted($"/runs/{run.Id}", run);
    }

    private static IResult RunNotFound(string id) =>
        Problems.Create(StatusCodes.Status404NotFound, "run_not_found", "No such run.", $"No run '{id}' is kept by the cluster.");

    /// <summary>The body of <c>POST /runs</c>.</summary>
    public sealed record StartRunBody(long Count, int? Accounts, string? Name);
}
