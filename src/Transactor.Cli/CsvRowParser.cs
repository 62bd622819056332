using System.Runtime.CompilerServices;
using System.Text;

namespace Transactor.Cli;

/// <summary>
/// Parses one line of <c>type, client, tx, amount</c> straight from UTF-8 bytes, without allocating.
/// Spaces and tabs around fields are ignored; the type is matched without regard to ASCII case.
/// An amount is an optional sign, digits, and optionally a point and at most
/// <see cref="AmountDecimals"/> digits (<c>1</c>, <c>1.5</c>, <c>2.7500</c>, <c>.5</c>, <c>5.</c>, <c>-3</c>).
/// </summary>
public static class CsvRowParser
{
    /// <summary>Decimal places of an amount: one minor unit is 0.0001.</summary>
    public const int AmountDecimals = 4;

    /// <summary>Minor units in one whole unit.</summary>
    public const long MinorPerUnit = 10_000;

    /// <summary>The longest line accepted; a well-formed row is under 70 bytes.</summary>
    public const int MaxLineBytes = 4096;

    /// <summary>The header's field names, in order.</summary>
    public static readonly string[] HeaderFields = ["type", "client", "tx", "amount"];

    private static readonly long[] FractionScale = [MinorPerUnit, 1_000, 100, 10, 1];

    /// <summary>True when <paramref name="line"/> is the header <c>type, client, tx, amount</c>.</summary>
    public static bool IsHeader(ReadOnlySpan<byte> line)
    {
        line = Trim(line);
        foreach (var name in HeaderFields)
        {
            var comma = line.IndexOf((byte)',');
            var field = Trim(comma < 0 ? line : line[..comma]);
            if (!Ascii.EqualsIgnoreCase(field, Encoding.ASCII.GetBytes(name)))
            {
                return false;
            }

            line = comma < 0 ? [] : line[(comma + 1)..];
            if (comma < 0 && name != HeaderFields[^1])
            {
                return false;
            }
        }

        return line.IsEmpty;
    }

    /// <summary>Parses one line (without its <c>\n</c>); <see cref="RowError.None"/> when <paramref name="row"/> is set.</summary>
    public static RowError Parse(ReadOnlySpan<byte> line, out BatchRow row)
    {
        row = default;
        line = Trim(line);
        if (line.IsEmpty)
        {
            return RowError.Blank;
        }

        var comma = line.IndexOf((byte)',');
        if (comma < 0)
        {
            return ParseKind(line, out _) ? RowError.MissingField : RowError.UnknownType;
        }

        if (!ParseKind(Trim(line[..comma]), out var kind))
        {
            return RowError.UnknownType;
        }

        var rest = line[(comma + 1)..];
        comma = rest.IndexOf((byte)',');
        if (comma < 0)
        {
            return RowError.MissingField;
        }

        var clientField = Trim(rest[..comma]);
        rest = rest[(comma + 1)..];
        comma = rest.IndexOf((byte)',');
        var txField = Trim(comma < 0 ? rest : rest[..comma]);
        var amountField = comma < 0 ? [] : rest[(comma + 1)..];
        if (amountField.Contains((byte)','))
        {
            return RowError.TooManyFields;
        }

        amountField = Trim(amountField);
        var error = ParseUnsigned(clientField, ushort.MaxValue, RowError.BadClient, RowError.ClientOutOfRange, out var client);
        if (error != RowError.None)
        {
            return error;
        }

        error = ParseUnsigned(txField, uint.MaxValue, RowError.BadTx, RowError.TxOutOfRange, out var tx);
        if (error != RowError.None)
        {
            return error;
        }

        long amountMinor = 0;
        if (kind is RowKind.Deposit or RowKind.Withdrawal)
        {
            if (amountField.IsEmpty)
            {
                return RowError.MissingAmount;
            }

            error = ParseAmount(amountField, out amountMinor);
        }
        else if (!amountField.IsEmpty)
        {
            // Disputes carry no amount; one that is given anyway must still be a number, and is ignored.
            error = ParseAmount(amountField, out _);
        }

        if (error != RowError.None)
        {
            return error;
        }

        row = new BatchRow(kind, (ushort)client, (uint)tx, amountMinor);
        return RowError.None;
    }

    /// <summary>Parses an amount into minor units of 0.0001.</summary>
    public static RowError ParseAmount(ReadOnlySpan<byte> field, out long amountMinor)
    {
        // Past this many whole units, the amount in minor units no longer fits in a long.
        const long MaxWhole = long.MaxValue / MinorPerUnit;
        amountMinor = 0;
        var i = 0;
        var negative = false;
        if (field.Length > 0 && field[0] is (byte)'-' or (byte)'+')
        {
            negative = field[0] == '-';
            i = 1;
        }

        long whole = 0;
        var wholeDigits = 0;
        var tooLarge = false;
        for (; i < field.Length && IsDigit(field[i]); i++, wholeDigits++)
        {
            whole = (whole * 10) + (field[i] - '0');
            if (whole > MaxWhole)
            {
                tooLarge = true;
                whole = MaxWhole;
            }
        }

        long fraction = 0;
        var fractionDigits = 0;
        if (i < field.Length && field[i] == '.')
        {
            for (i++; i < field.Length && IsDigit(field[i]); i++, fractionDigits++)
            {
                if (fractionDigits < AmountDecimals)
                {
                    fraction = (fraction * 10) + (field[i] - '0');
                }
            }
        }

        if (i != field.Length || wholeDigits + fractionDigits == 0)
        {
            return RowError.BadAmount;
        }

        if (fractionDigits > AmountDecimals)
        {
            return RowError.TooManyDecimals;
        }

        var fractionMinor = fraction * FractionScale[fractionDigits];
        if (tooLarge || whole > (long.MaxValue - fractionMinor) / MinorPerUnit)
        {
            return RowError.AmountOutOfRange;
        }

        amountMinor = (whole * MinorPerUnit) + fractionMinor;
        if (negative)
        {
            amountMinor = -amountMinor;
        }

        return RowError.None;
    }

    /// <summary>Trims spaces, tabs and carriage returns from both ends.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ReadOnlySpan<byte> Trim(ReadOnlySpan<byte> span)
    {
        var start = 0;
        while (start < span.Length && IsBlank(span[start]))
        {
            start++;
        }

        var end = span.Length;
        while (end > start && IsBlank(span[end - 1]))
        {
            end--;
        }

        return span[start..end];
    }

    private static RowError ParseUnsigned(ReadOnlySpan<byte> field, ulong max, RowError bad, RowError outOfRange, out ulong value)
    {
        value = 0;
        if (field.IsEmpty)
        {
            return RowError.MissingField;
        }

        var tooLarge = false;
        foreach (var c in field)
        {
            if (!IsDigit(c))
            {
                return bad;
            }

            if (!tooLarge)
            {
                value = (value * 10) + (uint)(c - '0');
                tooLarge = value > max;
            }
        }

        return tooLarge ? outOfRange : RowError.None;
    }

    private static bool ParseKind(ReadOnlySpan<byte> field, out RowKind kind)
    {
        // Lengths split the five names into two groups, so at most three comparisons.
        kind = default;
        if (field.Length == 7)
        {
            if (Ascii.EqualsIgnoreCase(field, "deposit"u8))
            {
                kind = RowKind.Deposit;
            }
            else if (Ascii.EqualsIgnoreCase(field, "dispute"u8))
            {
                kind = RowKind.Dispute;
            }
            else if (Ascii.EqualsIgnoreCase(field, "resolve"u8))
            {
                kind = RowKind.Resolve;
            }
            else
            {
                return false;
            }

            return true;
        }

        if (field.Length == 10)
        {
            if (Ascii.EqualsIgnoreCase(field, "withdrawal"u8))
            {
                kind = RowKind.Withdrawal;
            }
            else if (Ascii.EqualsIgnoreCase(field, "chargeback"u8))
            {
                kind = RowKind.Chargeback;
            }
            else
            {
                return false;
            }

            return true;
        }

        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsDigit(byte c) => (uint)(c - '0') <= 9;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsBlank(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\r';
}
