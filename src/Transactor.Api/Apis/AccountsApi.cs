using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Transactor.Api.Http;
using Transactor.Api.Metrics;
using Transactor.Api.Security;

namespace Transactor.Api.Apis;

/// <summary>Opening, reading and listing accounts; deposits and withdrawals.</summary>
public static class AccountsApi
{
    /// <summary>The largest page of accounts one request returns.</summary>
    public const int MaxPageSize = 100;

    private const int MaxOwnerLength = 200;

    private static readonly string[] OpenRequired = ["id", "currency"];
    private static readonly string[] OpenOptional = ["owner", "allow_overdraft", "credit_limit", "debits_must_not_exceed_credits", "metadata"];
    private static readonly string[] MoveRequired = ["amount"];
    private static readonly string[] MoveOptional = ["currency", "metadata"];

    public static RouteGroupBuilder MapAccountsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/accounts").WithTags("Accounts").RequireAuthorization(Roles.AnyKeyPolicy);
        group.MapPost("/", Open).WithSummary("Open an account").Accepts<OpenAccountBody>("application/json")
            .Produces<AccountView>(StatusCodes.Status201Created).Produces<AccountView>().ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status409Conflict);
        group.MapGet("/{id}", Get).WithSummary("Read an account's balances");
        group.MapGet("/", List).WithSummary("List accounts, a page at a time");
        group.MapPost("/{id}/deposits", Deposit).WithSummary("Deposit into an account").Accepts<AmountBody>("application/json")
            .Produces<TransferView>(StatusCodes.Status201Created).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireLedgerAdmission();
        group.MapPost("/{id}/withdrawals", Withdraw).WithSummary("Withdraw from an account").Accepts<AmountBody>("application/json")
            .Produces<TransferView>(StatusCodes.Status201Created).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .RequireLedgerAdmission();
        return group;
    }

    private static async Task<IResult> Open(HttpRequest request, IClusterClient client, AccountAccess access, CancellationToken cancellation)
    {
        var (body, problem) = await JsonBody.Read(request, OpenRequired, OpenOptional, cancellation);
        if (body is null)
        {
            return problem!;
        }

        if (!body.TryString("id", out var id, out problem) || !body.TryString("currency", out var currency, out problem) || !body.TryString("owner", out var owner, out problem)
            || !body.TryMetadata(out var metadata, out problem))
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

        // The key that opens an account owns it; an admin may name another owner (a key id).
        var user = request.HttpContext.User;
        if (owner is not null && !user.IsAdmin() && owner != user.KeyId())
        {
            return Problems.Create(StatusCodes.Status403Forbidden, "owner_not_allowed", "A client key opens accounts for itself only.",
                "Leave 'owner' out (the account is then the key's), or ask an admin to open the account for another owner.");
        }

        if (!AccountHistoryApi.TryReadLimits(body, out var limits, out problem))
        {
            return problem!;
        }

        // An overdraft is credit the ledger extends: only an admin grants it.
        if (limits!.AllowOverdraft && !user.IsAdmin())
        {
            return Problems.Create(StatusCodes.Status403Forbidden, "limits_not_allowed", "A client key opens accounts without an overdraft only.",
                "Leave allow_overdraft and credit_limit out, or ask an admin to open the account (or to change its limits with PUT /accounts/{id}/limits).");
        }

        owner ??= user.KeyId();
        var opened = await client.GetAccount(id!).OpenWithMetadata(currency!, owner, limits, metadata);
        switch (opened.Status)
        {
            case OpenAccountStatus.Opened:
            case OpenAccountStatus.AlreadyOpen:
                await AccountDirectory.Add(client, id!);
                access.Remember(opened.Account!);
                var view = AccountView.From(opened.Account!);
                return opened.Status == OpenAccountStatus.Opened
                    ? TypedResults.Created($"/accounts/{id}", view)
                    : TypedResults.Ok(view);
            case OpenAccountStatus.Conflict:
                return Problems.Create(StatusCodes.Status409Conflict, "account_exists", "The account exists with other details.",
                    $"Account '{id}' is already open in {opened.Account!.Currency} with another owner, currency, limits or metadata.");
            case OpenAccountStatus.InvalidLimits:
                return Problems.InvalidField("credit_limit", $"The credit limit is from 0 to {Money.MaxAmountMinor}, and only with allow_overdraft.");
            default:
                return Problems.InvalidField("currency", "The currency must be an ISO 4217 code.");
        }
    }

    private static async Task<IResult> Get(string id, HttpContext context, IClusterClient client, AccountAccess access)
    {
        if (await access.RequireOwner(context, id) is { } forbidden)
        {
            return forbidden;
        }

        if (!Ids.IsValidAccountId(id))
        {
            return Problems.AccountNotFound(id);
        }

        var snapshot = await client.GetAccount(id).GetSnapshot();
        return snapshot is null ? Problems.AccountNotFound(id) : TypedResults.Ok(AccountView.From(snapshot));
    }

    private static async Task<IResult> List(HttpContext context, IClusterClient client, string? limit, string? after)
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
        // A client key sees its own accounts only (a page may then hold fewer than the limit), and no total.
        var admin = context.User.IsAdmin();
        var items = snapshots.OfType<AccountSnapshot>().Where(s => admin || AccountAccess.MaySee(context, s)).Select(AccountView.From).ToArray();
        return TypedResults.Ok(new AccountPageView(items, page.Next, admin ? page.Total : null));
    }

    // A deposit credits: any key may make one into any open account.
    private static Task<IResult> Deposit(string id, HttpContext context, IClusterClient client, ApiMetrics metrics) =>
        MoveOne(id, context, client, metrics, null, (key, amount, currency, metadata) => TransferRequest.Deposit(key, id, amount, currency) with { Metadata = metadata });

    private static Task<IResult> Withdraw(string id, HttpContext context, IClusterClient client, ApiMetrics metrics, AccountAccess access) =>
        MoveOne(id, context, client, metrics, access, (key, amount, currency, metadata) => TransferRequest.Withdrawal(key, id, amount, currency) with { Metadata = metadata });

    /// <param name="debitAccess">Given for a debit: the caller must own the account.</param>
    private static async Task<IResult> MoveOne(string id, HttpContext context, IClusterClient client, ApiMetrics metrics, AccountAccess? debitAccess, Func<string, long, string?, MetadataMap?, TransferRequest> create)
    {
        if (debitAccess is not null && await debitAccess.RequireOwner(context, id) is { } forbidden)
        {
            return forbidden;
        }

        if (!IdempotencyKey.TryRead(context.Request, out var key, out var problem))
        {
            return problem!;
        }

        var (body, bodyProblem) = await JsonBody.Read(context.Request, MoveRequired, MoveOptional, context.RequestAborted);
        if (body is null)
        {
            return bodyProblem!;
        }

        if (!body.TryAmount(out var amount, out problem) || !body.TryString("currency", out var currency, out problem) || !body.TryMetadata(out var metadata, out problem))
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

        return await TransfersApi.Execute(context, client, metrics, create(key, amount, currency, metadata));
    }

    /// <summary>The body of <c>POST /accounts</c>.</summary>
    /// <param name="Metadata">Up to 16 string key/values (keys 1-64 letters, digits, '-', '_', '.'; values up to 256 characters), kept with the account.</param>
    public sealed record OpenAccountBody(string Id, string Currency, string? Owner, bool? AllowOverdraft = null, long? CreditLimit = null, bool? DebitsMustNotExceedCredits = null, IReadOnlyDictionary<string, string>? Metadata = null);

    /// <summary>The body of a deposit or withdrawal.</summary>
    /// <param name="Metadata">Up to 16 string key/values, stored with the movement.</param>
    public sealed record AmountBody(long Amount, string? Currency, IReadOnlyDictionary<string, string>? Metadata = null);
}
