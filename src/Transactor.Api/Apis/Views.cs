namespace Transactor.Api.Apis;

/// <summary>An account as the API shows it. Amounts are integer minor units.</summary>
public sealed record AccountView(
    string Id,
    string Currency,
    string? Owner,
    long Available,
    long Held,
    long Total,
    long Reserved,
    long Incoming,
    bool Locked,
    long Version,
    DateTimeOffset OpenedAt,
    long PendingDebit,
    long PendingCredit,
    bool AllowOverdraft = false,
    long CreditLimit = 0,
    IReadOnlyDictionary<string, string>? Metadata = null)
{
    public static AccountView From(AccountSnapshot s) =>
        new(s.AccountId, s.Currency, s.Owner, s.AvailableMinor, s.HeldMinor, s.TotalMinor, s.ReservedMinor, s.IncomingMinor, s.Locked, s.Version, s.OpenedAt, s.PendingDebitMinor, s.PendingCreditMinor,
            s.AllowOverdraft, s.CreditLimitMinor, s.Metadata?.ToDictionary());
}

/// <summary>One leg of a linked transfer as the API shows it; <c>Index</c> is its place among the legs sent (from 0), which <c>failed_leg</c> names.</summary>
public sealed record LegView(string From, string To, long Amount, string? Currency, int Index);

/// <summary>A page of accounts; pass <see cref="Next"/> as <c>after</c> to get the next one.</summary>
/// <param name="Total">Every open account; null for a client key, which sees only its own.</param>
public sealed record AccountPageView(IReadOnlyList<AccountView> Items, string? Next, int? Total);

/// <summary>
/// A transfer, deposit or withdrawal as the API shows it. A pending (two-phase) transfer is a
/// transfer whose status is <c>pending</c> while on hold, then <c>posted</c>, <c>voided</c> or
/// <c>expired</c>; its post or void shows as kind <c>post</c>, <c>void</c> or <c>expire</c> with the
/// pending transfer's id. <c>Timeout</c> and <c>ExpiresAt</c> are set for pending transfers with a timeout;
/// <c>PostedAmount</c> once one is posted. A linked transfer is kind <c>linked</c>: its <c>Legs</c>
/// in the order sent, <c>Amount</c> their sum, no <c>From</c> or <c>To</c>, every account it names in
/// <c>Accounts</c> (ascending id order, once it has ended), and when rejected the index of the leg at
/// fault in <c>FailedLeg</c>; a client key reads only the legs that name its accounts
/// (<see cref="WithLegsOf"/>). <c>Metadata</c> is the client's key/values on the movement.
/// </summary>
public sealed record TransferView(
    string Id,
    string Kind,
    string Status,
    string? Reason,
    string? From,
    string? To,
    long Amount,
    string? Currency,
    DateTimeOffset CreatedAt,
    AccountView? FromAccount,
    AccountView? ToAccount,
    bool Pending = false,
    string? Timeout = null,
    DateTimeOffset? ExpiresAt = null,
    long? PostedAmount = null,
    IReadOnlyDictionary<string, string>? Metadata = null,
    IReadOnlyList<LegView>? Legs = null,
    int? FailedLeg = null,
    IReadOnlyList<AccountView>? Accounts = null)
{
    /// <summary>
    /// The view of <paramref name="r"/>; for a pending transfer, <paramref name="end"/> is whatever
    /// ended it (its post, void or expiry), or null while it is on hold.
    /// </summary>
    public static TransferView Of(TransferResult r, TransferResult? end = null)
    {
        var request = r.Request;
        if (request.PendingTransferId is { } pendingId)
        {
            return Plain(r) with { Id = pendingId, Kind = request.Phase.ToString().ToLowerInvariant() };
        }

        if (request.Phase != TransferPhase.Pending || r.Status != TransferStatus.Committed)
        {
            return Plain(r) with { Pending = request.Phase == TransferPhase.Pending };
        }

        var status = end is { Status: TransferStatus.Committed } ? end.Request.Phase switch
        {
            TransferPhase.Post => "posted",
            TransferPhase.Void => "voided",
            _ => "expired",
        } : "pending";
        return Plain(r) with
        {
            Status = status,
            Pending = true,
            Timeout = request.Timeout is { } t ? System.Xml.XmlConvert.ToString(t) : null,
            ExpiresAt = request.Timeout is { } timeout ? r.CreatedAt + timeout : null,
            PostedAmount = status == "posted" ? end!.Request.AmountMinor : null,
        };
    }

    /// <summary>This view with the balances of only those accounts <paramref name="visible"/> allows.</summary>
    public TransferView ShowingOnly(TransferResult r, Func<AccountSnapshot, bool> visible)
    {
        ArgumentNullException.ThrowIfNull(r);
        ArgumentNullException.ThrowIfNull(visible);
        return this with
        {
            FromAccount = r.Debit is { } d && visible(d) ? FromAccount : null,
            ToAccount = r.Credit is { } c && visible(c) ? ToAccount : null,
            Accounts = r.Accounts is { } accounts ? [.. accounts.Where(visible).Select(AccountView.From)] : null,
        };
    }

    /// <summary>
    /// This view of a linked transfer as a client key that owns the accounts <paramref name="owned"/>
    /// may read it (docs/security.md, "Owners"): only the legs that name one of them, each as the
    /// single transfer it would read if the leg were one; <c>Amount</c> and <c>Currency</c> of those
    /// legs; <c>FailedLeg</c> only when it is one of them. Any other movement is returned as it is.
    /// </summary>
    public TransferView WithLegsOf(TransferResult r, IReadOnlySet<string> owned)
    {
        ArgumentNullException.ThrowIfNull(r);
        ArgumentNullException.ThrowIfNull(owned);
        if (r.Request.Legs is not { } legs || Legs is null)
        {
            return this;
        }

        LegView[] shown = [.. Legs.Where(l => owned.Contains(l.From) || owned.Contains(l.To))];
        if (shown.Length == legs.Count)
        {
            return this;
        }

        var currencies = shown.Select(l => l.Currency).Distinct(StringComparer.Ordinal).ToArray();
        return this with
        {
            Legs = shown,
            Amount = shown.Sum(l => l.Amount),
            Currency = currencies is [{ } only] ? only : null,
            FailedLeg = FailedLeg is { } failed && shown.Any(l => l.Index == failed) ? failed : null,
        };
    }

    private static TransferView Plain(TransferResult r) => new(
        r.TransferId,
        r.Request.Kind.ToString().ToLowerInvariant(),
        r.Status.ToString().ToLowerInvariant(),
        r.Reason == RejectionReason.None ? null : r.Reason.ToCode(),
        r.Request.DebitAccountId,
        r.Request.CreditAccountId,
        r.Request.AmountMinor,
        r.Request.Currency ?? r.Debit?.Currency ?? r.Credit?.Currency ?? LegsCurrency(r.Request.Legs),
        r.CreatedAt,
        r.Debit is { } d ? AccountView.From(d) : null,
        r.Credit is { } c ? AccountView.From(c) : null,
        Metadata: r.Request.Metadata?.ToDictionary(),
        Legs: r.Request.Legs is { } legs ? [.. legs.Items.Select((l, i) => new LegView(l.DebitAccountId, l.CreditAccountId, l.AmountMinor, l.Currency, i))] : null,
        FailedLeg: r.FailedLeg,
        Accounts: r.Accounts is { } accounts ? [.. accounts.Select(AccountView.From)] : null);

    /// <summary>The currency every leg names, or null when they name several (or none).</summary>
    private static string? LegsCurrency(TransferLegs? legs) =>
        legs?.Items.Select(l => l.Currency).Distinct(StringComparer.Ordinal).ToArray() is [{ } only] ? only : null;
}
