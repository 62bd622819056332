using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Transactor.Domain;

namespace Transactor.Cli;

/// <summary>
/// Applies a CSV of transactions to accounts and writes their balances: a lean actor pipeline.
/// One reader thread streams the input in <see cref="ReadBufferBytes"/> chunks, parses rows from the
/// bytes, claims deposit and withdrawal ids in one global <see cref="TxIdSet"/> (so "already used"
/// follows file order, whatever the partitioning), and appends each row to the batch of its client's
/// partition. Each partition is an actor: one bounded channel of batches, drained by one loop that owns
/// its clients' <see cref="AccountBook"/>s, so rows of a client are applied in file order and no account
/// is ever touched by two threads. A full channel blocks the reader: memory stays bounded by
/// partitions × (channel batches + 3) × batch rows × 16 bytes, plus the accounts.
/// </summary>
public sealed class BatchEngine
{
    /// <summary>Bytes read from the input at once.</summary>
    public const int ReadBufferBytes = 1 << 20;

    /// <summary>Client ids are u16: an account table of this many slots is the whole id space.</summary>
    public const int ClientIdCount = ushort.MaxValue + 1;

    /// <summary>The currency of batch accounts: ISO 4217's code for "no currency", as the file names none.</summary>
    public const string BatchCurrency = "XXX";

    /// <summary>Characters of a malformed line quoted in its report.</summary>
    public const int MaxQuotedChars = 120;

    private const int ProgressCheckLines = 1 << 16;

    // Rows whose slots are touched ahead of applying them: enough misses in flight to hide most of the
    // memory latency, few enough that the lines are still in L1/L2 when the rows are applied.
    private const int TouchGroupRows = 64;

    private static readonly int OutcomeCount = Enum.GetValues<BatchOutcome>().Length;

    private readonly BatchOptions _options;

    public BatchEngine(BatchOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>
    /// Reads <paramref name="input"/> to its end, reports malformed rows and progress on <paramref name="errors"/>,
    /// and, unless the run stopped early, writes the accounts to <paramref name="output"/> in client order.
    /// </summary>
    public async Task<BatchSummary> RunAsync(Stream input, Stream output, TextWriter errors, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(errors);
        var started = Stopwatch.GetTimestamp();
        var partitions = new Partition[_options.Partitions];
        for (var p = 0; p < partitions.Length; p++)
        {
            partitions[p] = new Partition(_options, OutcomeCount);
        }

        // A faulted partition (an invariant broken: a bug) must not leave the reader blocked on its full channel.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var workers = partitions.Select(p => Task.Run(async () =>
        {
            try
            {
                await p.RunAsync().ConfigureAwait(false);
            }
            catch
            {
                await stop.CancelAsync().ConfigureAwait(false);
                throw;
            }
        })).ToArray();

        var reader = new Reader(_options, partitions, errors, started, stop.Token);
        Task<ReadResult> reading = Task.Factory.StartNew(reader.ReadAll, input, stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        ReadResult read;
        try
        {
            read = await reading.ConfigureAwait(false);
        }
        finally
        {
            foreach (var partition in partitions)
            {
                partition.Complete();
            }

            // Surfaces a partition's exception before the reader's cancellation that it caused.
            await Task.WhenAll(workers).ConfigureAwait(false);
        }

        var outcomes = new long[OutcomeCount];
        foreach (var partition in partitions)
        {
            for (var i = 0; i < outcomes.Length; i++)
            {
                outcomes[i] += partition.Outcomes[i];
            }
        }

        var accounts = 0;
        var writing = Stopwatch.GetTimestamp();
        if (read.Status == BatchStatus.Completed)
        {
            accounts = await AccountsCsv.WriteAsync(output, EnumerateAccounts(partitions), cancellationToken).ConfigureAwait(false);
        }

        var timings = new BatchTimings(
            Reading: read.Reading - read.Blocked,
            ReaderBlocked: read.Blocked,
            Applying: TimeSpan.FromTicks(partitions.Sum(p => p.Applying.Ticks)),
            Checking: TimeSpan.FromTicks(partitions.Sum(p => p.Checking.Ticks)),
            Writing: Stopwatch.GetElapsedTime(writing));
        return new BatchSummary(read.Status, read.Lines, read.Rows, read.MalformedRows, outcomes, accounts, Stopwatch.GetElapsedTime(started), timings);
    }

    private static IEnumerable<(ushort Client, AccountState State)> EnumerateAccounts(Partition[] partitions)
    {
        for (var client = 0; client < ClientIdCount; client++)
        {
            if (partitions[client % partitions.Length].Books[client] is { } book)
            {
                yield return ((ushort)client, book.State);
            }
        }
    }

    private readonly record struct ReadResult(BatchStatus Status, long Lines, long Rows, long MalformedRows, TimeSpan Reading, TimeSpan Blocked);

    /// <summary>A batch of rows on its way to a partition; recycled once applied.</summary>
    private sealed class RowBatch(int capacity)
    {
        public BatchRow[] Rows { get; } = new BatchRow[capacity];

        public int Count { get; set; }
    }

    /// <summary>The reader: one thread, from bytes to batches.</summary>
    private sealed class Reader(BatchOptions options, Partition[] partitions, TextWriter errors, long started, CancellationToken cancellationToken)
    {
        private readonly TxIdSet _txIds = new();
        private readonly RowBatch[] _filling = partitions.Select(p => p.Rent()).ToArray();
        private long _lines;
        private long _rows;
        private long _malformed;
        private bool _headerSeen;
        private long _nextProgressLine = ProgressCheckLines;
        private long _lastProgressAt = Stopwatch.GetTimestamp();
        private long _readingSince;
        private long _blockedTicks;

        public ReadResult ReadAll(object? state)
        {
            var input = (Stream)state!;
            _readingSince = Stopwatch.GetTimestamp();
            var buffer = new byte[ReadBufferBytes];
            var filled = 0;
            var skippingLongLine = false;
            var atStart = true;
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var read = input.Read(buffer, filled, buffer.Length - filled);
                var atEnd = read == 0;
                filled += read;
                var pos = 0;
                if (atStart && (filled >= 3 || atEnd))
                {
                    atStart = false;
                    pos = buffer.AsSpan(0, filled).StartsWith("\uFEFF"u8) ? 3 : 0;
                }

                while (pos < filled && !atStart)
                {
                    var newline = buffer.AsSpan(pos, filled - pos).IndexOf((byte)'\n');
                    if (newline < 0 && !atEnd)
                    {
                        break;
                    }

                    var length = newline < 0 ? filled - pos : newline;
                    var line = buffer.AsSpan(pos, length);
                    pos += newline < 0 ? length : length + 1;
                    if (skippingLongLine)
                    {
                        // The rest of a line already reported as too long.
                        skippingLongLine = false;
                        continue;
                    }

                    _lines++;
                    var status = OnLine(line);
                    if (status != BatchStatus.Completed)
                    {
                        return Finish(status);
                    }
                }

                if (atEnd)
                {
                    return Finish(BatchStatus.Completed);
                }

                var pending = filled - pos;
                if (pending > CsvRowParser.MaxLineBytes && !skippingLongLine)
                {
                    // No newline within the limit: report the line now and drop bytes until its end.
                    _lines++;
                    if (Malformed(RowError.LineTooLong, buffer.AsSpan(pos, CsvRowParser.MaxLineBytes)) != BatchStatus.Completed)
                    {
                        return Finish(BatchStatus.StoppedAtMalformedRow);
                    }

                    skippingLongLine = true;
                }

                if (skippingLongLine)
                {
                    pending = 0;
                }

                buffer.AsSpan(pos, pending).CopyTo(buffer);
                filled = pending;
            }
        }

        private BatchStatus OnLine(ReadOnlySpan<byte> line)
        {
            if (!_headerSeen)
            {
                if (CsvRowParser.Trim(line).IsEmpty)
                {
                    return BatchStatus.Completed;
                }

                _headerSeen = true;
                if (CsvRowParser.IsHeader(line))
                {
                    return BatchStatus.Completed;
                }

                errors.WriteLine($"line {_lines}: expected the header 'type, client, tx, amount', found '{Quote(line)}'");
                return BatchStatus.BadHeader;
            }

            BatchRow row = default;
            var error = line.Length > CsvRowParser.MaxLineBytes ? RowError.LineTooLong : CsvRowParser.Parse(line, out row);
            if (error == RowError.None)
            {
                Route(row);
            }
            else if (error != RowError.Blank)
            {
                return Malformed(error, line);
            }

            if (_lines >= _nextProgressLine)
            {
                _nextProgressLine = _lines + ProgressCheckLines;
                Progress();
            }

            return BatchStatus.Completed;
        }

        private void Route(BatchRow row)
        {
            // Claimed in file order by the single reader, so partitioning cannot change which row wins an id.
            if (row.Kind is RowKind.Deposit or RowKind.Withdrawal && !_txIds.Add(row.Tx))
            {
                row = row with { Kind = RowKind.ReusedTx };
            }

            _rows++;
            var p = partitions.Length == 1 ? 0 : row.Client % partitions.Length;
            var batch = _filling[p];
            batch.Rows[batch.Count++] = row;
            if (batch.Count == batch.Rows.Length)
            {
                _blockedTicks += partitions[p].Send(batch, cancellationToken);
                _filling[p] = partitions[p].Rent();
            }
        }

        private BatchStatus Malformed(RowError error, ReadOnlySpan<byte> line)
        {
            _malformed++;
            errors.WriteLine($"line {_lines}: {error.Describe()}: {Quote(line)}");
            return options.Strict ? BatchStatus.StoppedAtMalformedRow : BatchStatus.Completed;
        }

        private ReadResult Finish(BatchStatus status)
        {
            for (var p = 0; p < partitions.Length; p++)
            {
                if (_filling[p].Count > 0)
                {
                    _blockedTicks += partitions[p].Send(_filling[p], cancellationToken);
                }
            }

            return new ReadResult(status, _lines, _rows, _malformed, Stopwatch.GetElapsedTime(_readingSince), Stopwatch.GetElapsedTime(0, _blockedTicks));
        }

        private void Progress()
        {
            if (options.ProgressInterval is not { } interval || Stopwatch.GetElapsedTime(_lastProgressAt) < interval)
            {
                return;
            }

            _lastProgressAt = Stopwatch.GetTimestamp();
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            errors.WriteLine(string.Create(CultureInfo.InvariantCulture, $"transactor: {_lines:N0} lines, {_lines / seconds:N0} lines/s, {_malformed:N0} malformed"));
            errors.Flush();
        }

        private static string Quote(ReadOnlySpan<byte> line)
        {
            var text = Encoding.UTF8.GetString(line.Length > MaxQuotedChars * 4 ? line[..(MaxQuotedChars * 4)] : line).TrimEnd('\r');
            return text.Length > MaxQuotedChars ? string.Concat(text.AsSpan(0, MaxQuotedChars), "...") : text;
        }
    }

    /// <summary>One actor: a channel of batches and the accounts of the clients routed to it.</summary>
    private sealed class Partition
    {
        private readonly BatchOptions _options;
        private readonly Channel<RowBatch> _channel;
        private readonly ConcurrentQueue<RowBatch> _free = new();

        // Keeps the reads of Touch observable, so the JIT cannot drop them.
        private uint _touched;

        public Partition(BatchOptions options, int outcomeCount)
        {
            _options = options;
            Outcomes = new long[outcomeCount];
            _channel = Channel.CreateBounded<RowBatch>(new BoundedChannelOptions(options.ChannelBatches)
            {
                SingleReader = true,
                SingleWriter = true,
                FullMode = BoundedChannelFullMode.Wait,
            });
        }

        /// <summary>Indexed by client id; only this partition's clients are ever set.</summary>
        public AccountBook?[] Books { get; } = new AccountBook?[ClientIdCount];

        public long[] Outcomes { get; }

        public RowBatch Rent() => _free.TryDequeue(out var batch) ? batch : new RowBatch(_options.BatchRows);

        /// <summary>Time spent applying rows, not waiting for them.</summary>
        public TimeSpan Applying { get; private set; }

        /// <summary>Time spent on the end-of-run invariant check.</summary>
        public TimeSpan Checking { get; private set; }

        /// <summary>
        /// Hands a batch to the actor; blocks the (dedicated) reader thread while the channel is full.
        /// Returns the <see cref="Stopwatch"/> ticks spent blocked.
        /// </summary>
        public long Send(RowBatch batch, CancellationToken cancellationToken)
        {
            if (_channel.Writer.TryWrite(batch))
            {
                return 0;
            }

            var blockedSince = Stopwatch.GetTimestamp();
            _channel.Writer.WriteAsync(batch, cancellationToken).AsTask().GetAwaiter().GetResult();
            return Stopwatch.GetTimestamp() - blockedSince;
        }

        public void Complete() => _channel.Writer.TryComplete();

        public async Task RunAsync()
        {
            var reader = _channel.Reader;
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                var applyingSince = Stopwatch.GetTimestamp();
                while (reader.TryRead(out var batch))
                {
                    Apply(batch.Rows.AsSpan(0, batch.Count));
                    batch.Count = 0;
                    _free.Enqueue(batch);
                }

                Applying += Stopwatch.GetElapsedTime(applyingSince);
            }

            // Once per account per run, in parallel across partitions: the release build's invariant check.
            var checkingSince = Stopwatch.GetTimestamp();
            foreach (var book in Books)
            {
                book?.AssertBatchInvariants();
            }

            Checking = Stopwatch.GetElapsedTime(checkingSince);
        }

        private void Apply(ReadOnlySpan<BatchRow> rows)
        {
            for (var start = 0; start < rows.Length; start += TouchGroupRows)
            {
                var group = rows.Slice(start, Math.Min(TouchGroupRows, rows.Length - start));
                Touch(group);
                ApplyInOrder(group);
            }
        }

        /// <summary>
        /// The accounts and their deposit tables do not fit in cache, and a row's cache misses cost more than
        /// the rest of its work. Reading the state and the slot each row of a group will need, in a loop that
        /// never branches on what it reads, lets those misses overlap; the rows then find them in cache.
        /// </summary>
        private void Touch(ReadOnlySpan<BatchRow> rows)
        {
            var books = Books;
            uint touched = 0;
            foreach (ref readonly var row in rows)
            {
                if (books[row.Client]?.State is not { } state)
                {
                    continue;
                }

                // Every rule reads the state's balances; all but a withdrawal probe the deposit table too.
                touched ^= (uint)state.AvailableMinor;
                if (row.Kind != RowKind.Withdrawal && state.Deposits is { } deposits)
                {
                    touched ^= deposits.Touch(row.Tx);
                }
            }

            _touched ^= touched;
        }

        private void ApplyInOrder(ReadOnlySpan<BatchRow> rows)
        {
            var books = Books;
            var outcomes = Outcomes;
            foreach (ref readonly var row in rows)
            {
                var book = books[row.Client] ??= Open(row.Client);
                var outcome = row.Kind switch
                {
                    RowKind.Deposit => book.Deposit(row.Tx, row.AmountMinor),
                    RowKind.Withdrawal => book.Withdraw(row.AmountMinor),
                    RowKind.Dispute => book.Dispute(row.Tx),
                    RowKind.Resolve => book.Resolve(row.Tx),
                    RowKind.Chargeback => book.Chargeback(row.Tx),
                    _ => BatchOutcome.DuplicateTx,
                };
                outcomes[(int)outcome]++;
                if (_options.CheckInvariantsEveryRow)
                {
                    book.AssertBatchInvariants();
                }
            }
        }

        private static AccountBook Open(ushort client)
        {
            var book = new AccountBook(client.ToString(CultureInfo.InvariantCulture), new AccountState());
            var opened = book.Open(BatchCurrency, owner: null, DateTimeOffset.UnixEpoch);
            if (opened.Status != OpenAccountStatus.Opened)
            {
                throw new LedgerInvariantException($"Account '{client}' could not be opened: {opened.Status}.");
            }

            return book;
        }
    }
}
