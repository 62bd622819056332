namespace Transactor;

/// <summary>
/// Rules for amounts. An amount is a <see cref="long"/> count of minor units (cents for USD);
/// no floating-point type ever holds money in Transactor.
/// </summary>
public static class Money
{
    /// <summary>The largest amount a single deposit, withdrawal or transfer may move: 10^15 minor units.</summary>
    public const long MaxAmountMinor = 1_000_000_000_000_000;

    /// <summary>True when <paramref name="amountMinor"/> is positive and within <see cref="MaxAmountMinor"/>.</summary>
    public static bool IsValidAmount(long amountMinor) => amountMinor is > 0 and <= MaxAmountMinor;
}

/// <summary>ISO 4217 currency codes: three upper-case ASCII letters.</summary>
public static class Currency
{
    /// <summary>True when <paramref name="code"/> has the shape of an ISO 4217 alphabetic code.</summary>
    public static bool IsValid(string? code) =>
        code is { Length: 3 } && char.IsAsciiLetterUpper(code[0]) && char.IsAsciiLetterUpper(code[1]) && char.IsAsciiLetterUpper(code[2]);
}

/// <summary>Rules for account ids and transfer (idempotency) ids.</summary>
public static class Ids
{
    /// <summary>Longest account id accepted.</summary>
    public const int MaxAccountIdLength = 64;

    /// <summary>Longest transfer id (idempotency key, with its client scope) accepted.</summary>
    public const int MaxTransferIdLength = 320;

    /// <summary>Account ids are 1–64 characters of letters, digits, '-', '_' and '.'.</summary>
    public static bool IsValidAccountId(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxAccountIdLength)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Transfer ids are 1–320 printable ASCII characters.</summary>
    public static bool IsValidTransferId(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxTransferIdLength)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (c is < (char)0x20 or > (char)0x7E)
            {
                return false;
            }
        }

        return true;
    }
}
