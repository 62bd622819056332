using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Transactor.Api.Events;

namespace Transactor.Api.Runs;

/// <summary>
/// Load runs launched from the dashboard, executed by this API process: it opens and funds the
/// run's accounts, then sends the run's transfers between random pairs of them through the same
/// coordinator call as <c>POST /transfers</c> (<see cref="ITransferCoordinatorGrain.Execute"/>), at
/// most <see cref="Concurrency"/> at once, and at the end checks the books: the money in the run's
/// accounts is what was deposited. Every viewer sees every run: each change goes to the metrics stream.
/// </summary>
public sealed partial class RunManager(IClusterClient client, MetricsFeed stream, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, TimeProvider time, ILogger<RunManager> logger) : IDisposable
{
    /// <summary>Transfers of one run in flight at once.</summary>
    public const int Concurrency = 64;

    /// <summary>Runs executing at once; another is refused (409) until one ends.</summary>
    public const int MaxActiveRuns = 2;

    /// <summary>Ended runs kept for viewers.</summary>
    public const int MaxKeptRuns = 20;

    public const long MaxCount = 10_000_000;

    public const int MinAccounts = 2;

    public const int MaxAccounts = 10_000;

    public const int MaxNameLength = 60;

    /// <summary>What each of a run's accounts is funded with (minor units): 10,000.00.</summary>
    public const long FundMinor = 1_000_000;

    /// <summary>The largest amount of one of a run's transfers (minor units).</summary>
    public const long MaxAmountMinor = 1_000;

    /// <summary>Attempts of one transfer that the ledger refused for load or could not answer (same key each time).</summary>
    public const int MaxAttempts = 50;

    private static readonly TimeSpan ProgressEvery = TimeSpan.FromMilliseconds(250);

    private readonly object _gate = new();
    private readonly List<LedgerRun> _runs = [];
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Every kept run, newest first.</summary>
    public IReadOnlyList<RunView> Views()
    {
        lock (_gate)
        {
            return _runs.Select(r => r.View(time)).Reverse().ToArray();
        }
    }

    public RunView? Find(string id)
    {
        lock (_gate)
        {
            return _runs.FirstOrDefault(r => r.Id == id)?.View(time);
        }
    }

    /// <summary>Starts a run, or null when <see cref="MaxActiveRuns"/> are executing.</summary>
    public RunView? Start(long count, int accounts, string? name)
    {
        LedgerRun run;
        lock (_gate)
        {
            if (_runs.Count(r => r.Active) >= MaxActiveRuns)
            {
                return null;
            }

            // 128 bits (a version 7 UUID: time-ordered, 74 random bits), unique across restarts and API instances.
            run = new LedgerRun(Guid.CreateVersion7(time.GetUtcNow()).ToString("N"), name, count, accounts, time.GetUtcNow(), _stopping.Token);
            _runs.Add(run);
            while (_runs.Count > MaxKeptRuns && _runs.FindIndex(r => !r.Active) is var ended and >= 0)
            {
                _runs.RemoveAt(ended);
            }
        }

        Publish(run);
        _ = Task.Run(() => Execute(run), CancellationToken.None);
        return run.View(time);
    }

    /// <summary>Asks a run to stop: transfers in flight end, no new ones start, then the books are checked. False when no such run is executing.</summary>
    public bool Cancel(string id)
    {
        LedgerRun? run;
        lock (_gate)
        {
            run = _runs.FirstOrDefault(r => r.Id == id && r.Active);
        }

        if (run is null)
        {
            return false;
        }

        run.Cancel();
        Publish(run);
        return true;
    }

    private async Task Execute(LedgerRun run)
    {
        using var progress = new PeriodicTimer(ProgressEvery, time);
        var reporting = Report(run, progress);
        try
        {
            var ids = Enumerable.Range(0, run.Accounts).Select(i => string.Create(CultureInfo.InvariantCulture, $"run-{run.Id}-{i}")).ToArray();
            var owner = run.Name ?? $"run {run.Id}";
            await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = run.Cancellation }, async (id, cancellation) =>
            {
                await client.GetAccount(id).Open("USD", owner);
                await AccountDirectory.Add(client, id);
                await Move(TransferRequest.Deposit($"{id}-fund", id, FundMinor, "USD"), cancellation);
            });

            run.Running(time.GetTimestamp());
            Publish(run);
            await Parallel.ForEachAsync(Sequence(run.Count), new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = run.Cancellation }, async (i, cancellation) =>
            {
                var from = Random.Shared.Next(ids.Length);
                var to = (from + 1 + Random.Shared.Next(ids.Length - 1)) % ids.Length;
                var request = new TransferRequest(string.Create(CultureInfo.InvariantCulture, $"run-{run.Id}-t{i}"), ids[from], ids[to], 1 + Random.Shared.NextInt64(MaxAmountMinor), "USD");
                var result = await Move(request, cancellation);
                run.Ended(result?.Status);
            });
        }
        catch (OperationCanceledException) when (run.Cancellation.IsCancellationRequested)
        {
            // Cancelled: what ended is counted; the books are checked below.
        }
        catch (Exception ex)
        {
            LogRunFailed(logger, ex, run.Id);
            run.Fail(ex.Message);
        }

        try
        {
            run.Checking(time.GetTimestamp());
            Publish(run);
            run.Checked(await CheckBooks(run));
        }
        catch (Exception ex)
        {
            LogRunFailed(logger, ex, run.Id);
            run.Fail("The books check failed: " + ex.Message);
        }

        run.End(time.GetUtcNow());
        progress.Dispose();
        await reporting;
        Publish(run);
    }

    private async Task Report(LedgerRun run, PeriodicTimer progress)
    {
        while (await progress.WaitForNextTickAsync())
        {
            Publish(run);
        }
    }

    private static IEnumerable<long> Sequence(long count)
    {
        for (var i = 0L; i < count; i++)
        {
            yield return i;
        }
    }

    /// <summary>
    /// Executes one movement as <c>POST /transfers</c> does, retrying with the same key while the
    /// ledger refuses it for load or cannot answer, and while it is pending (a retry waits for its
    /// outcome). Null when it did not end within <see cref="MaxAttempts"/>.
    /// </summary>
    private async Task<TransferResult?> Move(TransferRequest request, CancellationToken cancellation)
    {
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            try
            {
                var result = await client.GetCoordinator().Execute(request);
                if (result.Status != TransferStatus.Pending)
                {
                    return result;
                }
            }
            catch (Exception ex) when (ex is LedgerOverloadedException or LedgerUnavailableException or TimeoutException or OrleansMessageRejectionException)
            {
                // Nothing or the one outcome: a retry with the same key is safe.
            }

            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1_000, 20 * attempt)), time, cancellation);
        }

        return null;
    }

    /// <summary>The money in the run's accounts (available + held + reserved) against what was deposited: conserved at every step of every movement.</summary>
    private async Task<BooksView> CheckBooks(LedgerRun run)
    {
        long total = 0, inFlight = 0, opened = 0;
        var ids = Enumerable.Range(0, run.Accounts).Select(i => string.Create(CultureInfo.InvariantCulture, $"run-{run.Id}-{i}"));
        var gate = new object();
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (id, _) =>
        {
            if (await client.GetAccount(id).GetSnapshot() is { } snapshot)
            {
                lock (gate)
                {
                    opened++;
                    total += snapshot.AvailableMinor + snapshot.HeldMinor + snapshot.ReservedMinor;
                    inFlight += snapshot.ReservedMinor + snapshot.IncomingMinor;
                }
            }
        });

        // Only funded accounts hold money: a cancelled run may have opened some without funding them yet.
        var funded = await Task.WhenAll(Enumerable.Range(0, run.Accounts).Select(async i =>
            await client.GetTransferResult(string.Create(CultureInfo.InvariantCulture, $"run-{run.Id}-{i}-fund")) is { Status: TransferStatus.Committed } ? 1L : 0L));
        var expected = funded.Sum() * FundMinor;
        return new BooksView(expected == total, expected, total, inFlight, opened);
    }

    private void Publish(LedgerRun run) =>
        stream.Publish(new StreamItem("run", JsonSerializer.Serialize(run.View(time), json.Value.SerializerOptions)));

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId} failed")]
    private static partial void LogRunFailed(ILogger logger, Exception exception, string runId);

    /// <summary>One run's state; counters change from many threads.</summary>
    private sealed class LedgerRun(string id, string? name, long count, int accounts, DateTimeOffset startedAt, CancellationToken stopping)
    {
        private readonly CancellationTokenSource _cancel = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        private long _committed;
        private long _rejected;
        private long _unfinished;
        private long _runningSince;
        private long _runningEnded;
        private volatile string _state = "opening";
        private string? _error;
        private BooksView? _books;
        private DateTimeOffset? _endedAt;

        public string Id => id;

        public int Accounts => accounts;

        public long Count => count;

        public string? Name => name;

        public bool Active => _endedAt is null;

        public CancellationToken Cancellation => _cancel.Token;

        public void Cancel() => _cancel.Cancel();

        public void Running(long at)
        {
            _runningSince = at;
            _state = "running";
        }

        public void Ended(TransferStatus? status)
        {
            if (status == TransferStatus.Committed)
            {
                Interlocked.Increment(ref _committed);
            }
            else if (status == TransferStatus.Rejected)
            {
                Interlocked.Increment(ref _rejected);
            }
            else
            {
                Interlocked.Increment(ref _unfinished);
            }
        }

        public void Checking(long at)
        {
            _runningEnded = at;
            _state = "checking";
        }

        public void Checked(BooksView books) => _books = books;

        public void Fail(string error) => _error ??= error;

        public void End(DateTimeOffset at)
        {
            _state = _error is not null ? "failed" : _cancel.IsCancellationRequested ? "cancelled" : "done";
            _endedAt = at;
        }

        public RunView View(TimeProvider time)
        {
            var done = Interlocked.Read(ref _committed) + Interlocked.Read(ref _rejected) + Interlocked.Read(ref _unfinished);
            var seconds = _runningSince == 0 ? 0 : (_runningEnded != 0 ? time.GetElapsedTime(_runningSince, _runningEnded) : time.GetElapsedTime(_runningSince)).TotalSeconds;
            return new RunView(id, name, count, accounts, _state, _cancel.IsCancellationRequested, done, Interlocked.Read(ref _committed), Interlocked.Read(ref _rejected),
                Interlocked.Read(ref _unfinished), seconds > 0 ? Math.Round(done / seconds, 1) : 0, Math.Round(seconds, 2), startedAt, _endedAt, _books, _error);
        }
    }
}

/// <summary>A run as viewers see it. <c>Done</c> of <c>Count</c> transfers have ended (committed, rejected, or given up as unfinished).</summary>
/// <param name="State"><c>opening</c> (accounts), <c>running</c>, <c>checking</c> (the books), then <c>done</c>, <c>cancelled</c> or <c>failed</c>.</param>
/// <param name="PerSecond">Transfers ended per second since the run's transfers began.</param>
public sealed record RunView(
    string Id,
    string? Name,
    long Count,
    int Accounts,
    string State,
    bool CancelRequested,
    long Done,
    long Committed,
    long Rejected,
    long Unfinished,
    double PerSecond,
    double Seconds,
    DateTimeOffset StartedAt,
    DateTimeOffset? EndedAt,
    BooksView? Books,
    string? Error);

/// <summary>The books check of a run: the money in its accounts (available + held + reserved) equals what was deposited into them.</summary>
public sealed record BooksView(bool Balanced, long ExpectedMinor, long ActualMinor, long InFlightMinor, long Accounts);
