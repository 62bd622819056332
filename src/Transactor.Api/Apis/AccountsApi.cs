using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Transactor.Api.Http;
using Transactor.Api.Metrics;

namespace Transactor.Api.Apis;

/// <summary>Opening, reading and listing accounts; deposits and withdrawals.</summary>
public static class AccountsApi
{
    /// <summary>The largest page of accounts one request returns.</summary>
    public const int MaxPageSize = 100;

    private const int MaxOwnerLength = 200;

    private static readonly string[] OpenRequired = ["id", "currency"];
    private static readonly string[] OpenOptional = ["owner"];
    private static readonly string[] MoveRequired = ["amount"];
    private static readonly string[] MoveOptional = ["currency"];

    public static RouteGroupBuilder MapAccountsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/accounts").WithTags("Accounts");
        group.MapPost("/", Open).WithSummary("Open an account").Accepts<OpenAccountBody>("application/json")
            .Produces<AccountView>(StatusCodes.Status201Created).Produces<AccountView>().ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status409Conflict);
        group.MapGet("/{id}", Get).WithSummary("Read an account's balances");
        group.MapGet("/", List).WithSummary("List accounts, a page at a time");
        group.MapPost("/{id}/deposits", Deposit).WithSummary("Deposit into an account").Accepts<AmountBody>("application/json")
            .Produces<TransferView>(StatusCodes.Status201Created).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireRateLimiting(LedgerRateLimits.Policy);
        group.MapPost("/{id}/withdrawals", Withdraw).WithSummary("Withdraw from an account").Accepts<AmountBody>("application/json")
            .Produces<TransferView>(StatusCodes.Status201Created).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireRateLimiting(LedgerRateLimits.Policy);
        return group;
    }

    private static async Task<IResult> Open(HttpRequest request, IClusterClient client, CancellationToken cancellation)
    {
        var (body, problem) = await JsonBody.Read(request, OpenRequired, OpenOptional, cancellation);
        if (body is null)
        {
            return problem!;
        }

        if (!body.TryString("id", out var id, out problem) || !body.TryString("currency", out var currency, out problem) || !body.TryString("owner", out var owner, out problem))
        {
            return problem!;
        }

        if (!Ids.IsValidAccountId(id))
        {
            return Problems.InvalidField("id", $"Account ids are 1-{Ids.MaxAccountIdLength} characters of letters, digits, '-', '_' and '.'.");
        }

        if (!Currency.IsValid(currency))
        {
            return Problems.InvalidField("currency", "The currency must be an ISO 4217 code: three upper-case letters such as USD.");
        }

        if (owner is { Length: > MaxOwnerLength })
        {
            return Problems.InvalidField("owner", $"The owner is at most {MaxOwnerLength} characters.");
        }

        var opened = await client.GetAccount(id!).Open(currency!, owner);
        switch (opened.Status)
        {
            case OpenAccountStatus.Opened:
            case OpenAccountStatus.AlreadyOpen:
                await AccountDirectory.Add(client, id!);
                var view = AccountView.From(opened.Account!);
                return opened.Status == OpenAccountStatus.Opened
                    ? TypedResults.Created($"/accounts/{id}", view)
                    : TypedResults.Ok(view);
            case OpenAccountStatus.Conflict:
                return Problems.Create(StatusCodes.Status409Conflict, "account_exists", "The account exists with other details.",
                    $"Account '{id}' is already open in {opened.Account!.Currency} with another owner or currency.");
            default:
                return Problems.InvalidField("currency", "The currency must be an ISO 4217 code.");
        }
    }

    private static async Task<IResult> Get(string id, IClusterClient client)
    {
        if (!Ids.IsValidAccountId(id))
        {
            return Problems.AccountNotFound(id);
        }

        var snapshot = await client.GetAccount(id).GetSnapshot();
        return snapshot is null ? Problems.AccountNotFound(id) : TypedResults.Ok(AccountView.From(snapshot));
    }

    private static async Task<IResult> List(IClusterClient client, string? limit, string? after)
    {
        // Parsed here, not bound as an int: a binding failure answers a bare 400 and logs it as a
        // server failure, where a client's mistake deserves the same problem as any other field.
        var size = 50;
        if (!string.IsNullOrEmpty(limit) && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out size) || size is < 1 or > MaxPageSize))
        {
            return Problems.InvalidField("limit", $"The limit is a whole number from 1 to {MaxPageSize}.");
        }

        var page = await AccountDirectory.Page(client, after, size);
        var snapshots = await Task.WhenAll(page.AccountIds.Select(id => client.GetAccount(id).GetSnapshot()));
        var items = snapshots.OfType<AccountSnapshot>().Select(AccountView.From).ToArray();
        return TypedResults.Ok(new AccountPageView(items, page.Next, page.Total));
    }

    private static Task<IResult> Deposit(string id, HttpContext context, IClusterClient client, ApiMetrics metrics) =>
        MoveOne(id, context, client, metrics, (key, amount, currency) => TransferRequest.Deposit(key, id, amount, currency));

    private static Task<IResult> Withdraw(string id, HttpContext context, IClusterClient client, ApiMetrics metrics) =>
        MoveOne(id, context, client, metrics, (key, amount, currency) => TransferRequest.Withdrawal(key, id, amount, currency));

    private static async Task<IResult> MoveOne(string id, HttpContext context, IClusterClient client, ApiMetrics metrics, Func<string, long, string?, TransferRequest> create)
    {
        if (!IdempotencyKey.TryRead(context.Request, out var key, out var problem))
        {
            return problem!;
        }

        var (body, bodyProblem) = await JsonBody.Read(context.Request, MoveRequired, MoveOptional, context.RequestAborted);
        if (body is null)
        {
            return bodyProblem!;
        }

        if (!body.TryAmount(out var amount, out problem) || !body.TryString("currency", out var currency, out problem))
        {
            return problem!;
        }

        if (currency is not null && !Currency.IsValid(currency))
        {
            return Problems.InvalidField("currency", "The currency must be an ISO 4217 code: three upper-case letters such as USD.");
        }

        if (!Ids.IsValidAccountId(id))
        {
            return Problems.AccountNotFound(id);
        }

        return await TransfersApi.Execute(context, client, metrics, create(key, amount, currency));
    }

    /// <summary>The body of <c>POST /accounts</c>.</summary>
    public sealed record OpenAccountBody(string Id, string Currency, string? Owner);

    /// <summary>The body of a deposit or withdrawal.</summary>
    public sealed record AmountBody(long Amount, string? Currency);
}
