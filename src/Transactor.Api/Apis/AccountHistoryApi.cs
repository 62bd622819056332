using System.Buffers.Text;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;
using Transactor.Api.Http;
using Transactor.Api.Security;
using Transactor.Domain;

namespace Transactor.Api.Apis;

/// <summary>An account's history (<c>/entries</c>), its balances at a past instant (<c>/balance?at=</c>), and its limits.</summary>
public static class AccountHistoryApi
{
    /// <summary>Entries per page unless <c>limit</c> says otherwise.</summary>
    public const int DefaultPageSize = 100;

    /// <summary>The most entries one page holds.</summary>
    public const int MaxPageSize = 1_000;

    private const string CursorPrefix = "e1:";

    /// <summary>How a query parameter names a metadata key/value that entries must carry: <c>metadata.orderId=abc</c>.</summary>
    private const string MetadataPrefix = "metadata.";

    private const string EntriesDescription =
        "Every change of the account (transfer_in/out, deposit, withdrawal, hold_in/out, post_in/out, void_in/out, expiry_in/out, dispute, resolve, chargeback) with the balances after it. "
        + "limit: 1-1,000 entries a page (default 100); after: a page's 'next', to continue. "
        + "Filter by metadata with one query parameter per key/value, 'metadata.<key>=<value>' (for example ?metadata.orderId=abc&metadata.channel=web): only entries whose movement carried every pair are listed (keys compare exactly, case included). "
        + "An entry carries the metadata of the movement that made it (a post or void its own, not the hold's; expiries and dispute steps none; entries recorded before this feature none). "
        + "A filtered request looks at no more than 1,000 entries of the history (Transactor:Transfers:HistoryScanPerRead), matching or not: its page may hold fewer than 'limit' entries, or none, and still carry a 'next' to continue from; 'next' is null once the end of the history has been looked at. "
        + "400 invalid_metadata_filter (with 'field') for a parameter that starts with 'metadata' but is not metadata.<key> with a key of 1-64 letters, digits, '-', '_', '.', a key given twice, a value over 256 characters or with control characters, or more than 16 pairs; invalid_limit and invalid_cursor as the names say.";

    private static readonly string[] LimitsRequired = [];
    private static readonly string[] LimitsOptional = ["allow_overdraft", "credit_limit", "debits_must_not_exceed_credits"];

    public static RouteGroupBuilder MapAccountHistoryApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/accounts").WithTags("Accounts").RequireAuthorization(Roles.AnyKeyPolicy);
        group.MapGet("/{id}/entries", Entries).WithSummary("List an account's history, oldest first, a page at a time")
            .WithDescription(EntriesDescription)
            .Produces<EntryPageView>().ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status403Forbidden).ProducesProblem(StatusCodes.Status404NotFound);
        group.MapGet("/{id}/balance", Balance).WithSummary("Read an account's balances at a past instant")
            .Produces<BalanceAtView>().ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status403Forbidden).ProducesProblem(StatusCodes.Status404NotFound);
        group.MapPut("/{id}/limits", SetLimits).WithSummary("Change an account's overdraft and credit limit (admin keys only)")
            .Accepts<LimitsBody>("application/json").RequireAuthorization(Roles.AdminPolicy)
            .Produces<AccountView>().ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        return group;
    }

    /// <summary>The opaque cursor that continues a listing after entry <paramref name="sequence"/>.</summary>
    public static string Cursor(long sequence) => Base64Url.EncodeToString(Encoding.ASCII.GetBytes(CursorPrefix + sequence.ToString(CultureInfo.InvariantCulture)));

    /// <summary>Reads a cursor made by <see cref="Cursor"/>; false for anything else.</summary>
    public static bool TryReadCursor(string cursor, out long sequence)
    {
        sequence = 0;
        if (cursor.Length is 0 or > 64)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[64];
        if (!Base64Url.TryDecodeFromChars(cursor, bytes, out var length) || length <= CursorPrefix.Length)
        {
            return false;
        }

        var text = Encoding.ASCII.GetString(bytes[..length]);
        return text.StartsWith(CursorPrefix, StringComparison.Ordinal)
            && long.TryParse(text.AsSpan(CursorPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out sequence)
            && Cursor(sequence) == cursor;
    }

    private static async Task<IResult> Entries(string id, HttpContext context, IClusterClient client, AccountAccess access, string? after, string? limit)
    {
        // Parsed here, not bound: a binding failure answers a bare 400 where a client's mistake deserves a problem with its code.
        var size = DefaultPageSize;
        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out size) || size is < 1 or > MaxPageSize))
        {
            return Invalid("invalid_limit", "limit", $"The limit is a whole number from 1 to {MaxPageSize}.");
        }

        long afterSequence = 0;
        if (!string.IsNullOrEmpty(after) && !TryReadCursor(after, out afterSequence))
        {
            return Invalid("invalid_cursor", "after", "The cursor is not one this API gave out: pass a page's 'next' as 'after', or leave 'after' out to start at the first entry.");
        }

        if (!TryReadMetadataFilter(context.Request.QueryString.Value, out var filter, out var filterProblem))
        {
            return filterProblem!;
        }

        if (await access.RequireOwner(context, id) is { } forbidden)
        {
            return forbidden;
        }

        if (!Ids.IsValidAccountId(id))
        {
            return Problems.AccountNotFound(id);
        }

        var history = client.GetAccountHistory();
        if (await (filter is null ? history.Entries(id, afterSequence, size) : history.EntriesMatching(id, afterSequence, size, filter)) is not { } page)
        {
            return Problems.AccountNotFound(id);
        }

        var items = page.Entries.Select(EntryView.From).ToArray();
        // A filtered read continues after the last entry it looked at, which may be past the last it kept.
        var last = filter is not null ? Math.Max(page.ScannedThrough, afterSequence) : items.Length > 0 ? items[^1].Sequence : afterSequence;
        return TypedResults.Ok(new EntryPageView(items, last < page.Count ? Cursor(last) : null, page.Count));
    }

    /// <summary>
    /// The metadata filter of a query string: every <c>metadata.&lt;key&gt;=&lt;value&gt;</c> parameter, all of
    /// which an entry must carry; null when there is none. Keys are read as sent, case included (the
    /// framework's query collection ignores case, so the raw query string is read). A parameter whose
    /// name starts with "metadata" (any case) but is not <c>metadata.</c> and a valid key, a key given
    /// twice, a value metadata could not hold, or more than <see cref="MetadataMap.MaxEntries"/> pairs
    /// is a 400 <c>invalid_metadata_filter</c> naming the parameter.
    /// </summary>
    internal static bool TryReadMetadataFilter(string? query, out MetadataMap? filter, out IResult? problem)
    {
        filter = null;
        problem = null;
        if (string.IsNullOrEmpty(query))
        {
            return true;
        }

        List<KeyValuePair<string, string>>? pairs = null;
        foreach (var parameter in new QueryStringEnumerable(query.StartsWith('?') ? query.AsMemory(1) : query.AsMemory()))
        {
            var name = parameter.DecodeName().Span;
            if (!name.StartsWith("metadata", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (!name.StartsWith(MetadataPrefix, StringComparison.OrdinalIgnoreCase))
            {
                problem = InvalidFilter("metadata", "Filter by metadata with one parameter per key/value, metadata.<key>=<value>, such as metadata.orderId=abc.");
                return false;
            }

            var key = name[MetadataPrefix.Length..].ToString();
            if (!MetadataMap.IsValidKey(key))
            {
                var shown = key.Length <= MetadataMap.MaxKeyLength ? key : key[..MetadataMap.MaxKeyLength] + "…";
                problem = InvalidFilter("metadata.*", $"'{shown}' is not a metadata key: 1-{MetadataMap.MaxKeyLength} letters, digits, '-', '_' and '.'.");
                return false;
            }

            pairs ??= [];
            if (pairs.Exists(p => string.Equals(p.Key, key, StringComparison.Ordinal)))
            {
                problem = InvalidFilter(MetadataPrefix + key, $"metadata.{key} is given twice; an entry carries one value per key.");
                return false;
            }

            if (pairs.Count == MetadataMap.MaxEntries)
            {
                problem = InvalidFilter("metadata", $"A filter holds at most {MetadataMap.MaxEntries} metadata key/values, as metadata itself does.");
                return false;
            }

            var value = parameter.DecodeValue().ToString();
            if (value.Length > MetadataMap.MaxValueLength || value.Any(char.IsControl))
            {
                problem = InvalidFilter(MetadataPrefix + key, $"The value of metadata.{key} must be at most {MetadataMap.MaxValueLength} characters with no control characters, as metadata values are.");
                return false;
            }

            pairs.Add(new(key, value));
        }

        filter = MetadataMap.Of(pairs);
        return true;

        static IResult InvalidFilter(string field, string detail) => Invalid("invalid_metadata_filter", field, detail);
    }

    private static async Task<IResult> Balance(string id, HttpContext context, IClusterClient client, AccountAccess access, string? at)
    {
        if (!TryReadInstant(at, out var instant))
        {
            return Invalid("invalid_timestamp", "at", "'at' is an ISO 8601 date and time with its offset, such as 2026-12-05T10:00:00Z.");
        }

        if (await access.RequireOwner(context, id) is { } forbidden)
        {
            return forbidden;
        }

        if (!Ids.IsValidAccountId(id) || await client.GetAccountHistory().BalanceAt(id, instant) is not { } balance)
        {
            return Problems.AccountNotFound(id);
        }

        return balance.Status switch
        {
            BalanceAtStatus.BeforeOpening => Problems.Create(StatusCodes.Status404NotFound, "before_account_opened", "The account was not open then.",
                $"Account '{id}' was opened at {balance.Account.OpenedAt:O}, after {instant:O}."),
            BalanceAtStatus.BeforeHistory => Problems.Create(StatusCodes.Status404NotFound, "history_not_available", "The account's history does not reach back that far.",
                $"Account '{id}' was opened by a version that kept no history; its balances are known from when its history started."),
            _ => TypedResults.Ok(new BalanceAtView(id, balance.Account.Currency, instant, balance.Sequence, balance.EntryAt,
                balance.AvailableMinor, balance.HeldMinor, balance.PendingDebitMinor, balance.PendingCreditMinor, balance.AvailableMinor + balance.HeldMinor + balance.PendingDebitMinor)),
        };
    }

    private static async Task<IResult> SetLimits(string id, HttpRequest request, IClusterClient client, CancellationToken cancellation)
    {
        var (body, problem) = await JsonBody.Read(request, LimitsRequired, LimitsOptional, cancellation);
        if (body is null)
        {
            return problem!;
        }

        if (!TryReadLimits(body, out var limits, out problem))
        {
            return problem!;
        }

        if (!Ids.IsValidAccountId(id))
        {
            return Problems.AccountNotFound(id);
        }

        var result = await client.GetAccount(id).SetLimits(limits!);
        return result.Status switch
        {
            SetLimitsStatus.Changed => TypedResults.Ok(AccountView.From(result.Account!)),
            SetLimitsStatus.BalanceBelowLimit => Problems.Create(StatusCodes.Status409Conflict, "balance_below_limit", "The balance is below what the new limits allow.",
                $"Account '{id}' has {result.Account!.AvailableMinor} available, below the new floor of {limits!.FloorMinor}; nothing changed."),
            SetLimitsStatus.InvalidLimits => Problems.InvalidField("credit_limit", $"The credit limit is from 0 to {Money.MaxAmountMinor}, and only with allow_overdraft."),
            _ => Problems.AccountNotFound(id),
        };
    }

    /// <summary>
    /// The limits in a body's <c>allowOverdraft</c>, <c>creditLimit</c> and <c>debitsMustNotExceedCredits</c>;
    /// <see cref="AccountLimits.Default"/> when none is given.
    /// </summary>
    internal static bool TryReadLimits(JsonBody body, out AccountLimits? limits, out IResult? problem)
    {
        limits = null;
        if (!body.TryBool("allow_overdraft", out var overdraft, out problem) || !body.TryLong("credit_limit", out var creditLimit, out problem))
        {
            return false;
        }

        var strict = !overdraft;
        if (body.Has("debits_must_not_exceed_credits") && !body.TryBool("debits_must_not_exceed_credits", out strict, out problem))
        {
            return false;
        }

        if (strict == overdraft)
        {
            problem = Invalid("conflicting_limits", "debits_must_not_exceed_credits",
                "Set exactly one of allow_overdraft (with a credit_limit) and debits_must_not_exceed_credits (the default).");
            return false;
        }

        if (overdraft && creditLimit is not (>= 0 and <= Money.MaxAmountMinor))
        {
            problem = Problems.InvalidField("credit_limit", $"With allow_overdraft, credit_limit is a whole number of minor units from 0 to {Money.MaxAmountMinor}: how far below zero available may go.");
            return false;
        }

        if (!overdraft && creditLimit is not null)
        {
            problem = Problems.InvalidField("credit_limit", "A credit_limit needs allow_overdraft: true.");
            return false;
        }

        limits = overdraft ? new AccountLimits(true, creditLimit!.Value) : AccountLimits.Default;
        return true;
    }

    private static bool TryReadInstant(string? text, out DateTimeOffset instant)
    {
        instant = default;
        if (string.IsNullOrEmpty(text) || text.Length > 40)
        {
            return false;
        }

        // A '+' in a query string arrives as a space when the client did not escape it.
        text = text.Replace(' ', '+');
        // ISO 8601 only (a date, 'T', a time and an offset or Z): the invariant culture would also take "12/05/2026".
        if (text.Length < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || !(text.EndsWith('Z') || text[^6] is '+' or '-'))
        {
            return false;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out instant);
    }

    private static IResult Invalid(string code, string field, string detail) =>
        Problems.Create(StatusCodes.Status400BadRequest, code, "A query parameter is not valid.", detail, new Dictionary<string, object?> { ["field"] = field });

    /// <summary>The body of <c>PUT /accounts/{id}/limits</c>.</summary>
    public sealed record LimitsBody(bool? AllowOverdraft, long? CreditLimit, bool? DebitsMustNotExceedCredits);
}

/// <summary>
/// One entry of an account's history: what changed and the balances right after. Available counts
/// money that movements still in flight have reserved, since it leaves only when they are applied.
/// </summary>
/// <param name="Metadata">The key/values of the movement that made the entry; null for none (expiries, dispute steps, entries recorded before entries kept metadata).</param>
public sealed record EntryView(
    long Sequence,
    DateTimeOffset At,
    string Kind,
    string? TransferId,
    string? PendingTransferId,
    string? Counterparty,
    long Amount,
    long Available,
    long Held,
    long PendingDebit,
    long PendingCredit,
    long Total,
    IReadOnlyDictionary<string, string>? Metadata = null)
{
    public static EntryView From(HistoryEntry e) => new(
        e.Sequence, e.At, KindName(e.Kind), e.TransferId, e.PendingTransferId, e.CounterpartyAccountId, e.AmountMinor,
        e.AvailableMinor, e.HeldMinor, e.PendingDebitMinor, e.PendingCreditMinor, e.AvailableMinor + e.HeldMinor + e.PendingDebitMinor,
        e.Metadata?.ToDictionary());

    /// <summary>The stable name of a kind in the API.</summary>
    public static string KindName(HistoryKind kind) => kind switch
    {
        HistoryKind.Deposit => "deposit",
        HistoryKind.Withdrawal => "withdrawal",
        HistoryKind.TransferIn => "transfer_in",
        HistoryKind.TransferOut => "transfer_out",
        HistoryKind.HoldIn => "hold_in",
        HistoryKind.HoldOut => "hold_out",
        HistoryKind.PostIn => "post_in",
        HistoryKind.PostOut => "post_out",
        HistoryKind.VoidIn => "void_in",
        HistoryKind.VoidOut => "void_out",
        HistoryKind.ExpireIn => "expiry_in",
        HistoryKind.ExpireOut => "expiry_out",
        HistoryKind.Dispute => "dispute",
        HistoryKind.Resolve => "resolve",
        HistoryKind.Chargeback => "chargeback",
        _ => "unknown",
    };
}

/// <summary>A page of entries; pass <see cref="Next"/> as <c>after</c> for the next one (null: none yet).</summary>
/// <param name="Count">The account's entries at the time of the read.</param>
public sealed record EntryPageView(IReadOnlyList<EntryView> Items, string? Next, long Count);

/// <summary>An account's balances at <see cref="At"/>: those after entry <see cref="Sequence"/> (0: before its first entry).</summary>
public sealed record BalanceAtView(
    string Id,
    string Currency,
    DateTimeOffset At,
    long Sequence,
    DateTimeOffset? EntryAt,
    long Available,
    long Held,
    long PendingDebit,
    long PendingCredit,
    long Total);
