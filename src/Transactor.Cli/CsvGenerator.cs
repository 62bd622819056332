using System.Buffers;
using System.Buffers.Text;

namespace Transactor.Cli;

/// <summary>What <see cref="CsvGenerator"/> makes.</summary>
/// <param name="Rows">Data rows after the header.</param>
/// <param name="Clients">Clients, with ids 1 to this.</param>
/// <param name="Seed">The same seed, rows and clients give the same file.</param>
public sealed record GenerateOptions(long Rows, int Clients, int Seed)
{
    /// <summary>Client ids are u16 and start at 1.</summary>
    public const int MaxClients = ushort.MaxValue;

    /// <summary>Throws when an option is out of range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(Rows);
        ArgumentOutOfRangeException.ThrowIfLessThan(Clients, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Clients, MaxClients);
    }
}

/// <summary>
/// Writes a realistic stress file: mostly deposits and withdrawals (some above the balance), disputes of
/// recent deposits that are mostly resolved and sometimes charged back, and a sprinkling of rows the
/// rules ignore (reused ids, zero and negative amounts, disputes of unknown or other clients' deposits,
/// resolves of undisputed ones) and of malformed rows. Amounts come as <c>1</c>, <c>1.5</c>,
/// <c>2.75</c>, <c>2.7500</c>, <c>0.0001</c>; some rows have spaces around fields, some disputes an empty
/// amount field and some none. Memory is bounded whatever the row count: the generator only keeps a
/// balance estimate per client and two fixed rings of recent deposits and open disputes.
/// </summary>
public static class CsvGenerator
{
    /// <summary>Recent deposits remembered as dispute targets.</summary>
    public const int RecentDeposits = 1 << 14;

    /// <summary>Open disputes remembered as resolve and chargeback targets.</summary>
    public const int OpenDisputes = 1 << 14;

    // Cumulative shares of a row's kind, per ten thousand rows.
    private const int MalformedBelow = 5;
    private const int IgnoredBelow = MalformedBelow + 10;
    private const int DisputeBelow = IgnoredBelow + 150;
    private const int ResolveBelow = DisputeBelow + 120;
    private const int ChargebackBelow = ResolveBelow + 8;
    private const int DepositBelow = 5_800;

    private const int BufferBytes = 1 << 16;
    private const int MaxRowBytes = 256;

    /// <summary>Writes the header and <see cref="GenerateOptions.Rows"/> rows to <paramref name="output"/>.</summary>
    public static void Write(Stream output, GenerateOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        new State(output, options).Run(cancellationToken);
    }

    private sealed class State(Stream output, GenerateOptions options)
    {
        private readonly Random _random = new(options.Seed);
        private readonly byte[] _buffer = new byte[BufferBytes];
        private readonly long[] _balanceMinor = new long[options.Clients + 1];
        private readonly (ushort Client, uint Tx)[] _recent = new (ushort, uint)[RecentDeposits];
        private readonly (ushort Client, uint Tx)[] _disputes = new (ushort, uint)[OpenDisputes];
        private int _recentCount;
        private int _disputeCount;
        private uint _nextTx = 1;
        private int _used;

        public void Run(CancellationToken cancellationToken)
        {
            Text("type, client, tx, amount\n"u8);
            for (long row = 0; row < options.Rows; row++)
            {
                if (_used > _buffer.Length - MaxRowBytes)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    Flush();
                }

                NextRow();
            }

            Flush();
            output.Flush();
        }

        private void NextRow()
        {
            var pick = _random.Next(10_000);
            if (pick < MalformedBelow)
            {
                Malformed();
            }
            else if (pick < IgnoredBelow)
            {
                Ignored();
            }
            else if (pick < DisputeBelow && _recentCount > 0)
            {
                var (client, tx) = _recent[_random.Next(_recentCount)];
                Reference("dispute"u8, client, tx);
                if (_disputeCount < _disputes.Length)
                {
                    _disputes[_disputeCount++] = (client, tx);
                }
            }
            else if (pick < ChargebackBelow && pick >= DisputeBelow && _disputeCount > 0)
            {
                // Swap-remove: a dispute ends once.
                var index = _random.Next(_disputeCount);
                var (client, tx) = _disputes[index];
                _disputes[index] = _disputes[--_disputeCount];
                Reference(pick < ResolveBelow ? "resolve"u8 : "chargeback"u8, client, tx);
            }
            else if (pick < DepositBelow)
            {
                Deposit(Client(), _nextTx++, Amount());
            }
            else
            {
                Withdrawal();
            }
        }

        private void Deposit(ushort client, uint tx, long amountMinor)
        {
            Money("deposit"u8, client, tx, amountMinor);
            _balanceMinor[client] += amountMinor;
            _recent[_recentCount < _recent.Length ? _recentCount++ : _random.Next(_recent.Length)] = (client, tx);
        }

        private void Withdrawal()
        {
            var client = Client();
            var balance = _balanceMinor[client];

            // Most withdrawals fit the balance; some ask for more and are ignored.
            var amount = balance > 0 && _random.Next(100) < 85 ? Math.Max(1, RoundLike(_random.NextInt64(balance / 2) + 1)) : Amount() + balance;
            Money("withdrawal"u8, client, _nextTx++, amount);
            if (amount <= balance)
            {
                _balanceMinor[client] -= amount;
            }
        }

        private void Ignored()
        {
            switch (_random.Next(7))
            {
                case 0 when _recentCount > 0:
                    // Reuses a deposit's id.
                    Money("deposit"u8, Client(), _recent[_random.Next(_recentCount)].Tx, Amount());
                    break;
                case 1:
                    Money(_random.Next(2) == 0 ? "deposit"u8 : "withdrawal"u8, Client(), _nextTx++, -_random.Next(2) * Amount());
                    break;
                case 2:
                    Reference("dispute"u8, Client(), _nextTx + (uint)_random.Next(1, 1_000_000));
                    break;
                case 3 when _recentCount > 0:
                    // Another client's deposit.
                    var (client, tx) = _recent[_random.Next(_recentCount)];
                    Reference("dispute"u8, (ushort)((client % options.Clients) + 1), tx);
                    break;
                case 4 when _recentCount > 0:
                    var recent = _recent[_random.Next(_recentCount)];
                    Reference(_random.Next(2) == 0 ? "resolve"u8 : "chargeback"u8, recent.Client, recent.Tx);
                    break;
                case 5 when _disputeCount > 0:
                    // Disputes a deposit under dispute already.
                    var open = _disputes[_random.Next(_disputeCount)];
                    Reference("dispute"u8, open.Client, open.Tx);
                    break;
                default:
                    Reference("resolve"u8, Client(), _nextTx + 7);
                    break;
            }
        }

        private void Malformed()
        {
            var client = Client();
            switch (_random.Next(8))
            {
                case 0:
                    Text("transfer,"u8);
                    Number(client);
                    Text(","u8);
                    Number(_nextTx);
                    Text(",1.0\n"u8);
                    break;
                case 1:
                    Text("deposit,"u8);
                    Number(client);
                    Text(","u8);
                    Number(_nextTx);
                    Text(",1.2.3\n"u8);
                    break;
                case 2:
                    Text("deposit,"u8);
                    Number(client);
                    Text(","u8);
                    Number(_nextTx);
                    Text(",1.23456\n"u8);
                    break;
                case 3:
                    Text("deposit,70000,"u8);
                    Number(_nextTx);
                    Text(",1.0\n"u8);
                    break;
                case 4:
                    Text("withdrawal,"u8);
                    Number(client);
                    Text(",4294967296,1.0\n"u8);
                    break;
                case 5:
                    Text("deposit,"u8);
                    Number(client);
                    Text(","u8);
                    Number(_nextTx);
                    Text("\n"u8);
                    break;
                case 6:
                    Text("deposit,"u8);
                    Number(client);
                    Text("\n"u8);
                    break;
                default:
                    Text("deposit,abc,"u8);
                    Number(_nextTx);
                    Text(",1.0\n"u8);
                    break;
            }
        }

        private void Money(ReadOnlySpan<byte> type, ushort client, uint tx, long amountMinor)
        {
            var spaced = Fields(type, client, tx);
            Separator(spaced);
            FormatAmount(amountMinor);
            Text("\n"u8);
        }

        private void Reference(ReadOnlySpan<byte> type, ushort client, uint tx)
        {
            var spaced = Fields(type, client, tx);
            if (_random.Next(2) == 0)
            {
                Separator(spaced);
            }

            Text("\n"u8);
        }

        private bool Fields(ReadOnlySpan<byte> type, ushort client, uint tx)
        {
            var spaced = _random.Next(100) < 15;
            if (spaced)
            {
                Text("  "u8);
            }

            Text(type);
            Separator(spaced);
            Number(client);
            Separator(spaced);
            Number(tx);
            return spaced;
        }

        private void Separator(bool spaced) => Text(spaced ? " , "u8 : ","u8);

        private ushort Client()
        {
            // A tenth of the rows go to the first percent of clients: a few busy accounts.
            var hot = Math.Max(1, options.Clients / 100);
            return (ushort)(_random.Next(10) == 0 ? _random.Next(1, hot + 1) : _random.Next(1, options.Clients + 1));
        }

        private long Amount() => RoundLike(_random.NextInt64(1, 5_000 * CsvRowParser.MinorPerUnit));

        // Real amounts are mostly whole or in cents; a few use all four places.
        private long RoundLike(long amountMinor) => _random.Next(10) switch
        {
            < 4 => Math.Max(1, amountMinor / CsvRowParser.MinorPerUnit) * CsvRowParser.MinorPerUnit,
            < 8 => Math.Max(1, amountMinor / 100) * 100,
            _ => amountMinor,
        };

        private void FormatAmount(long amountMinor)
        {
            if (amountMinor < 0)
            {
                Text("-"u8);
                amountMinor = -amountMinor;
            }

            Number((ulong)(amountMinor / CsvRowParser.MinorPerUnit));
            var fraction = amountMinor % CsvRowParser.MinorPerUnit;
            var style = _random.Next(4);
            if (fraction == 0 && style < 2)
            {
                return;
            }

            // Trailing zeros are dropped half the time: 2.75 and 2.7500 are the same amount.
            var digits = CsvRowParser.AmountDecimals;
            while (style < 2 && digits > 1 && fraction % 10 == 0)
            {
                fraction /= 10;
                digits--;
            }

            Text("."u8);
            Utf8Formatter.TryFormat((ulong)fraction, _buffer.AsSpan(_used), out var written, new StandardFormat('D', (byte)digits));
            _used += written;
        }

        private void Number(ulong value)
        {
            Utf8Formatter.TryFormat(value, _buffer.AsSpan(_used), out var written);
            _used += written;
        }

        private void Text(ReadOnlySpan<byte> text)
        {
            text.CopyTo(_buffer.AsSpan(_used));
            _used += text.Length;
        }

        private void Flush()
        {
            output.Write(_buffer, 0, _used);
            _used = 0;
        }
    }
}
