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
    DateTimeOffset OpenedAt)
{
    public static AccountView From(AccountSnapshot s) =>
        new(s.AccountId, s.Currency, s.Owner, s.AvailableMinor, s.HeldMinor, s.TotalMinor, s.ReservedMinor, s.IncomingMinor, s.Locked, s.Version, s.OpenedAt);
}

/// <summary>A page of accounts; pass <see cref="Next"/> as <c>after</c> to get the next one.</summary>
/// <param name="Total">Every open account; null for a client key, which sees only its own.</param>
public sealed record AccountPageView(IReadOnlyList<AccountView> Items, string? Next, int? Total);

/// <summary>A transfer, deposit or withdrawal as the API shows it.</summary>
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
    AccountView? ToAccount)
{
    /// <summary>The view, showing the balances of only those accounts <paramref name="visible"/> allows.</summary>
    public static TransferView Of(TransferResult r, Func<AccountSnapshot, bool> visible)
    {
        ArgumentNullException.ThrowIfNull(r);
        ArgumentNullException.ThrowIfNull(visible);
        var view = Of(r);
        return view with
        {
            FromAccount = r.Debit is { } d && visible(d) ? view.FromAccount : null,
            ToAccount = r.Credit is { } c && visible(c) ? view.ToAccount : null,
        };
    }

    public static TransferView Of(TransferResult r) => new(
        r.TransferId,
        r.Request.Kind.ToString().ToLowerInvariant(),
        r.Status.ToString().ToLowerInvariant(),
        r.Reason == RejectionReason.None ? null : r.Reason.ToCode(),
        r.Request.DebitAccountId,
        r.Request.CreditAccountId,
        r.Request.AmountMinor,
        r.Request.Currency ?? r.Debit?.Currency ?? r.Credit?.Currency,
        r.CreatedAt,
        r.Debit is { } d ? AccountView.From(d) : null,
        r.Credit is { } c ? AccountView.From(c) : null);
}
