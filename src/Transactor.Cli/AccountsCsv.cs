using System.Buffers;
using System.Buffers.Text;
using Transactor.Domain;

namespace Transactor.Cli;

/// <summary>Writes accounts as <c>client,available,held,total,locked</c>, amounts with exactly four decimal places.</summary>
public static class AccountsCsv
{
    /// <summary>The header line, without its newline.</summary>
    public const string Header = "client,available,held,total,locked";

    private const int BufferBytes = 1 << 16;

    // client (5) + 3 amounts (sign, 15 digits, point, 4 decimals) + "false" + separators: well under this.
    private const int MaxRowBytes = 128;

    /// <summary>Writes the header and one row per account, in the order given; returns the number of rows.</summary>
    public static async Task<int> WriteAsync(Stream output, IEnumerable<(ushort Client, AccountState State)> accounts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(accounts);
        var buffer = new byte[BufferBytes];
        var used = Append(buffer, 0, Header + "\n");
        var count = 0;
        foreach (var (client, state) in accounts)
        {
            if (used > buffer.Length - MaxRowBytes)
            {
                await output.WriteAsync(buffer.AsMemory(0, used), cancellationToken).ConfigureAwait(false);
                used = 0;
            }

            used += FormatRow(buffer.AsSpan(used), client, state);
            count++;
        }

        await output.WriteAsync(buffer.AsMemory(0, used), cancellationToken).ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return count;
    }

    /// <summary>Formats minor units of 0.0001 with exactly four decimal places, e.g. 27500 as <c>2.7500</c>.</summary>
    public static string FormatAmount(long amountMinor)
    {
        Span<byte> text = stackalloc byte[32];
        var length = FormatAmount(text, amountMinor);
        return System.Text.Encoding.ASCII.GetString(text[..length]);
    }

    private static int FormatRow(Span<byte> row, ushort client, AccountState state)
    {
        var used = Format(row, client);
        row[used++] = (byte)',';
        used += FormatAmount(row[used..], state.AvailableMinor);
        row[used++] = (byte)',';
        used += FormatAmount(row[used..], state.HeldMinor);
        row[used++] = (byte)',';
        used += FormatAmount(row[used..], checked(state.AvailableMinor + state.HeldMinor));
        row[used++] = (byte)',';
        var locked = state.Locked ? "true\n"u8 : "false\n"u8;
        locked.CopyTo(row[used..]);
        return used + locked.Length;
    }

    private static int FormatAmount(Span<byte> destination, long amountMinor)
    {
        var used = 0;
        if (amountMinor < 0)
        {
            // Never for a balance (available, held ≥ 0 are invariants); kept exact for any long nonetheless.
            destination[used++] = (byte)'-';
        }

        var magnitude = amountMinor == long.MinValue ? (ulong)long.MaxValue + 1 : (ulong)Math.Abs(amountMinor);
        used += Format(destination[used..], magnitude / (ulong)CsvRowParser.MinorPerUnit);
        destination[used++] = (byte)'.';
        if (!Utf8Formatter.TryFormat(magnitude % (ulong)CsvRowParser.MinorPerUnit, destination[used..], out var written, new StandardFormat('D', CsvRowParser.AmountDecimals)))
        {
            throw new InvalidOperationException("An amount's fraction did not fit its buffer.");
        }

        return used + written;
    }

    private static int Format(Span<byte> destination, ulong value) =>
        Utf8Formatter.TryFormat(value, destination, out var written)
            ? written
            : throw new InvalidOperationException("A number did not fit its buffer.");

    private static int Append(Span<byte> destination, int at, string ascii) =>
        at + System.Text.Encoding.ASCII.GetBytes(ascii, destination[at..]);
}
