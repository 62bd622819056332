using System.Globalization;
using Microsoft.Extensions.Options;
using Transactor.Api.Events;
using Transactor.Api.Http;

namespace Transactor.Api.Runs;

/// <summary>
/// Load runs launched from the dashboard. The API process that is asked to start a run executes it:
/// it opens and funds the run's accounts, then sends the run's transfers between random pairs of them
/// through the same coordinator call as <c>POST /transfers</c> (<see cref="ITransferCoordinatorGrain.Execute"/>),
/// at most <see cref="Concurrency"/> at once, and at the end checks the books: the money in the run's
/// accounts is what was deposited. Every run lives in the cluster's run registry
/// (<see cref="IRunRegistryGrain"/>): the executor registers it, reports its view every
/// <see cref="ReportEvery"/> (and learns from the answer whether a viewer on any instance asked to
/// cancel it), and every API instance reads the registry (<see cref="RunBoard"/>), so every viewer
/// sees every run. See docs/events.md, Runs.
/// </summary>
public sealed partial class RunManager(IClusterClient client, TransferEventLog events, IOptions<RunLimitOptions> options, TimeProvider time, ILogger<RunManager> logger) : IHostedService, IDisposable
{
    /// <summary>Transfers of one run in flight at once.</summary>
    public const int Concurrency = 64;

    /// <summary>Runs this API process executes at once; another is refused (409) until one ends.</summary>
    public const int MaxActiveRuns = 2;

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

    /// <summary>How often the executor reports a run's view to the registry.</summary>
    public static readonly TimeSpan ReportEvery = TimeSpan.FromMilliseconds(250);

    /// <summary>How long one call to the registry may take before it is given up (the next report tries again).</summary>
    private static readonly TimeSpan RegistryTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long stopping waits for this process's runs to report that they were abandoned.</summary>
    private static readonly TimeSpan StopWait = TimeSpan.FromSeconds(3);

    private readonly object _gate = new();
    private readonly List<(LedgerRun Run, Task Execution)> _executing = [];
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;

    private IRunRegistryGrain Registry => client.Runs();

    private TimeSpan Lease => options.Value.ReportLease;

    /// <summary>Every run the cluster keeps, newest first.</summary>
    public async Task<IReadOnlyList<RunView>> Views() => (await Registry.List(Guid.Empty, 0))?.Runs ?? [];

    /// <summary>A run the cluster keeps, whichever API process executes it; null when none.</summary>
    public Task<RunView?> Find(string id) => Registry.Get(id);

    /// <summary>
    /// Registers a run with the cluster and starts executing it here; null when this process executes
    /// <see cref="MaxActiveRuns"/> already, or the registry has <see cref="LedgerRuns.MaxKept"/> active runs.
    /// </summary>
    public async Task<RunView?> Start(long count, int accounts, string? name)
    {
        LedgerRun run;
        lock (_gate)
        {
            if (_executing.Count >= MaxActiveRuns)
            {
                return null;
            }

            // 128 bits (a version 7 UUID: time-ordered, 74 random bits), unique across restarts and API instances.
            run = new LedgerRun(Guid.CreateVersion7(time.GetUtcNow()).ToString("N"), name, count, accounts, time.GetUtcNow(), events.Instance, _stopping.Token);
            // The place is taken before the registry is asked, so that two starts at once cannot both pass the check.
            _executing.Add((run, Task.CompletedTask));
        }

        var registered = false;
        try
        {
            registered = await Registry.Register(run.View(time), Lease);
        }
        finally
        {
            if (!registered)
            {
                Forget(run);
            }
        }

        if (!registered)
        {
            return null;
        }

        var execution = Task.Run(() => Execute(run), CancellationToken.None);
        lock (_gate)
        {
            var index = _executing.FindIndex(e => e.Run == run);
            if (index >= 0)
            {
                _executing[index] = (run, execution);
            }
        }

        return run.View(time);
    }

    /// <summary>
    /// Asks a run to stop, whichever process executes it: transfers in flight end, no new ones start,
    /// then the books are checked. Its executor hears it with its next report (at once when it is this
    /// process). The run as it stands (an ended one unchanged), or null when the cluster keeps no such run.
    /// </summary>
    public async Task<RunView?> Cancel(string id)
    {
        var view = await Registry.Cancel(id);
        if (view is { Ended: false })
        {
            Executing(id)?.Cancel();
        }

        return view;
    }

    private LedgerRun? Executing(string id)
    {
        lock (_gate)
        {
            return _executing.Find(e => e.Run.Id == id).Run;
        }
    }

    private void Forget(LedgerRun run)
    {
        lock (_gate)
        {
            _executing.RemoveAll(e => e.Run == run);
        }
    }

    private async Task Execute(LedgerRun run)
    {
        using var progress = new PeriodicTimer(ReportEvery, time);
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
            // Cancelled (or abandoned): what ended is counted; the books are checked below.
        }
        catch (Exception ex)
        {
            LogRunFailed(logger, ex, run.Id);
            run.Fail(ex.Message);
        }

        if (_stopping.IsCancellationRequested)
        {
            run.Abandon("The API process executing it stopped. Its transfers that ended stand; the books check was not done.");
        }

        if (!run.Abandoned)
        {
            try
            {
                run.Checking(time.GetTimestamp());
                run.Checked(await CheckBooks(run));
            }
            catch (Exception ex)
            {
                LogRunFailed(logger, ex, run.Id);
                run.Fail("The books check failed: " + ex.Message);
            }
        }

        run.End(time);
        progress.Dispose();
        await reporting;
        await ReportEnd(run);
        Forget(run);
    }

    /// <summary>Reports the run every <see cref="ReportEvery"/> until it ends; a viewer's cancel, or the registry's verdict that it was abandoned, stops it.</summary>
    private async Task Report(LedgerRun run, PeriodicTimer progress)
    {
        while (await progress.WaitForNextTickAsync())
        {
            try
            {
                switch (await Registry.Report(run.View(time), Lease).WaitAsync(RegistryTimeout))
                {
                    case RunVerdict.Cancel:
                        run.Cancel();
                        break;
                    case RunVerdict.Stop:
                        LogRunStoppedByRegistry(logger, run.Id);
                        run.Abandon("The cluster's run registry ended it as abandoned: this API process did not report it in time.");
                        break;
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The registry may be moving to another silo: the next report tries again, within the lease.
                LogReportFailed(logger, ex, run.Id);
            }
        }
    }

    /// <summary>The run's final view, tried for as long as its lease lasts (after that the registry has ended it as abandoned).</summary>
    private async Task ReportEnd(LedgerRun run)
    {
        var started = time.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await Registry.Report(run.View(time), Lease).WaitAsync(RegistryTimeout);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogReportFailed(logger, ex, run.Id);
                if (time.GetElapsedTime(started) >= Lease || _stopping.IsCancellationRequested)
                {
                    return;
                }
            }

            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1_000, 100 * attempt)), time);
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
        long total = 0, inFlight = 0, opened = 0, funded = 0;
        var gate = new object();
        await Parallel.ForEachAsync(Enumerable.Range(0, run.Accounts), new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (i, _) =>
        {
            var id = string.Create(CultureInfo.InvariantCulture, $"run-{run.Id}-{i}");
            var snapshot = await client.GetAccount(id).GetSnapshot();
            // Only funded accounts hold money: a cancelled run may have opened some without funding them yet.
            var fundedHere = await client.GetTransferResult(id + "-fund") is { Status: TransferStatus.Committed };
            lock (gate)
            {
                if (snapshot is not null)
                {
                    opened++;
                    total += snapshot.AvailableMinor + snapshot.HeldMinor + snapshot.ReservedMinor;
                    inFlight += snapshot.ReservedMinor + snapshot.IncomingMinor;
                }

                funded += fundedHere ? 1 : 0;
            }
        });

        var expected = funded * FundMinor;
        return new BooksView(expected == total, expected, total, inFlight, opened);
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// The process stops: its runs stop too, as abandoned (their books are not checked), and their end
    /// is reported while the cluster client still runs; a run whose end does not get through is ended
    /// as abandoned by the registry once its lease runs out.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        Task[] executions;
        lock (_gate)
        {
            executions = [.. _executing.Select(e => e.Execution)];
        }

        try
        {
            await Task.WhenAll(executions).WaitAsync(StopWait, cancellationToken);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            LogStopTimedOut(logger, executions.Length);
        }
    }

    /// <summary>Safe to call more than once: the container disposes this both as a singleton and as the hosted service its factory returned.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _stopping.Cancel();
            _stopping.Dispose();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId} failed")]
    private static partial void LogRunFailed(ILogger logger, Exception exception, string runId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Reporting run {RunId} to the run registry failed; the next report tries again")]
    private static partial void LogReportFailed(ILogger logger, Exception exception, string runId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The run registry ended run {RunId} as abandoned; it stops here")]
    private static partial void LogRunStoppedByRegistry(ILogger logger, string runId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stopping: {Runs} runs did not report their end in time; the registry ends them when their lease runs out")]
    private static partial void LogStopTimedOut(ILogger logger, int runs);

    /// <summary>One run's state; counters change from many threads.</summary>
    private sealed class LedgerRun(string id, string? name, long count, int accounts, DateTimeOffset startedAt, string executor, CancellationToken stopping)
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
        private volatile bool _abandoned;

        public string Id => id;

        public int Accounts => accounts;

        public long Count => count;

        public string? Name => name;

        public CancellationToken Cancellation => _cancel.Token;

        /// <summary>It stops without its books check: its process stops, or the registry ended it.</summary>
        public bool Abandoned => _abandoned;

        public void Cancel() => _cancel.Cancel();

        public void Abandon(string error)
        {
            _error ??= error;
            _abandoned = true;
            _cancel.Cancel();
        }

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

        public void End(TimeProvider time)
        {
            _state = _abandoned ? "abandoned" : _error is not null ? "failed" : _cancel.IsCancellationRequested ? "cancelled" : "done";
            if (_runningSince != 0 && _runningEnded == 0)
            {
                _runningEnded = time.GetTimestamp();
            }

            _endedAt = time.GetUtcNow();
        }

        public RunView View(TimeProvider time)
        {
            var done = Interlocked.Read(ref _committed) + Interlocked.Read(ref _rejected) + Interlocked.Read(ref _unfinished);
            var seconds = _runningSince == 0 ? 0 : (_runningEnded != 0 ? time.GetElapsedTime(_runningSince, _runningEnded) : time.GetElapsedTime(_runningSince)).TotalSeconds;
            return new RunView(id, name, count, accounts, _state, _cancel.IsCancellationRequested, done, Interlocked.Read(ref _committed), Interlocked.Read(ref _rejected),
                Interlocked.Read(ref _unfinished), seconds > 0 ? Math.Round(done / seconds, 1) : 0, Math.Round(seconds, 2), startedAt, _endedAt, _books, _error, executor);
        }
    }
}

