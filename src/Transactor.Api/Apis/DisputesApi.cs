using Transactor.Api.Http;
using Transactor.Api.Security;
using Transactor.Domain;

namespace Transactor.Api.Apis;

/// <summary>Disputes of deposits: dispute, then resolve or chargeback. The same rules as the batch engine.</summary>
public static class DisputesApi
{
    private static readonly string[] Required = ["deposit"];

    /// <summary>The three steps: route, summary, and the account grain's rule.</summary>
    private static readonly (string Path, string Summary, Func<IAccountGrain, string, Task<DisputeResult>> Rule)[] Steps =
    [
        ("/disputes", "Dispute a deposit: its amount moves from available to held", (account, deposit) => account.Dispute(deposit)),
        ("/resolves", "Resolve a disputed deposit: its amount moves from held back to available", (account, deposit) => account.Resolve(deposit)),
        ("/chargebacks", "Charge back a disputed deposit: its amount leaves the account, which locks", (account, deposit) => account.Chargeback(deposit)),
    ];

    public static RouteGroupBuilder MapDisputesApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/accounts/{id}").WithTags("Disputes").RequireAuthorization(Roles.AnyKeyPolicy);
        foreach (var (path, summary, rule) in Steps)
        {
            group.MapPost(path, (string id, HttpRequest request, IClusterClient client, AccountAccess access) => Handle(id, request, client, access, rule))
                .WithSummary(summary)
                .Accepts<DepositBody>("application/json").Produces<AccountView>().ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity);
        }

        return group;
    }

    private static async Task<IResult> Handle(string id, HttpRequest request, IClusterClient client, AccountAccess access, Func<IAccountGrain, string, Task<DisputeResult>> rule)
    {
        if (await access.RequireOwner(request.HttpContext, id) is { } forbidden)
        {
            return forbidden;
        }

        var (body, problem) = await JsonBody.Read(request, Required, [], request.HttpContext.RequestAborted);
        if (body is null)
        {
            return problem!;
        }

        if (!body.TryString("deposit", out var deposit, out problem))
        {
            return problem!;
        }

        if (!Ids.IsValidAccountId(id))
        {
            return Problems.AccountNotFound(id);
        }

        var result = await rule(client.GetAccount(id), deposit!);
        return result.Outcome switch
        {
            BatchOutcome.Applied => TypedResults.Ok(AccountView.From(result.Account!)),
            BatchOutcome.AccountNotFound => Problems.AccountNotFound(id),
            BatchOutcome.NotOwner => AccountAccess.NotOwner(),
            BatchOutcome.UnknownTx => Problems.Create(StatusCodes.Status404NotFound, "deposit_not_found", "No such deposit on this account.",
                $"Account '{id}' has no committed deposit '{deposit}' among the last {AccountBook.DisputableDeposits:N0}, the deposits that can be disputed."),
            BatchOutcome.AccountLocked => Refused("account_locked", "The account is locked by a chargeback."),
            BatchOutcome.AlreadyDisputed => Refused("already_disputed", "The deposit is under dispute already."),
            BatchOutcome.NotDisputed => Refused("not_disputed", "The deposit is not under dispute."),
            BatchOutcome.ChargedBack => Refused("charged_back", "The deposit was charged back."),
            BatchOutcome.ExceedsAvailable => Refused("insufficient_funds", "The available balance does not cover the deposit: available may never go negative."),
            var other => Refused(other.ToString().ToLowerInvariant(), "The rule does not apply."),
        };
    }

    private static IResult Refused(string code, string detail) =>
        Problems.Create(StatusCodes.Status422UnprocessableEntity, code, "The dispute step was refused; nothing changed.", detail);

    /// <summary>The body of a dispute, resolve or chargeback: the deposit's idempotency key.</summary>
    public sealed record DepositBody(string Deposit);
}
