using System.CommandLine;
using System.Diagnostics;
using System.Runtime;
using System.Runtime.InteropServices;
using HdrHistogram;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Storage;
using Orleans.Transactions;
using Transactor;
using Transactor.Benchmarks;
using Transactor.Grains;
using Transactor.Persistence;
using Orleans.Configuration;

var secondsOption = new Option<int>("--seconds") { Description = "Measured seconds per workload.", DefaultValueFactory = _ => 10 };
var warmupOption = new Option<int>("--warmup") { Description = "Warm-up seconds per workload.", DefaultValueFactory = _ => 3 };
var concurrencyOption = new Option<int>("--concurrency") { Description = "Transfers in flight at once.", DefaultValueFactory = _ => 256 };
var accountsOption = new Option<int>("--accounts") { Description = "Accounts in the uniform workload.", DefaultValueFactory = _ => 10_000 };
var hotOption = new Option<int>("--hot-accounts") { Description = "Accounts in the hot-set workload.", DefaultValueFactory = _ => 10 };
var seedOption = new Option<int>("--seed") { Description = "Seed of the random transfers.", DefaultValueFactory = _ => 42 };
var postgresOption = new Option<string?>("--postgres") { Description = "Store grain state and reminders in this PostgreSQL database (an Npgsql connection string) instead of in memory." };
var workloadsOption = new Option<string>("--workloads") { Description = "Comma-separated workloads to run: uniform, hot.", DefaultValueFactory = _ => "uniform,hot" };
var admitOption = new Option<int?>("--max-concurrent-transfers") { Description = "Transactor:Transfers:MaxConcurrentTransfers, the movements the silo drives at once (default: 8 per processor in memory, 32 on PostgreSQL; 0: no limit)." };
var directoryOption = new Option<bool>("--distributed-directory") { Description = "Use Orleans' strongly consistent grain directory (AddDistributedGrainDirectory, experimental in Orleans 10) instead of the default one." };
var ledgerStorageOption = new Option<string>("--ledger-storage") { Description = "With --postgres, the ledger's grain storage provider: Batched (group commit across grains) or AdoNet (Orleans' ADO.NET provider).", DefaultValueFactory = _ => BatchedGrainStorageRegistration.ProviderType };
var historyOption = new Option<bool>("--no-history") { Description = "Accounts record no history (Transactor:Transfers:RecordHistory=false): to measure what recording it costs." };
var pageSizeOption = new Option<int?>("--history-page-size") { Description = "Transactor:Transfers:HistoryPageSize, entries per history page (default 8)." };
var engineOption = new Option<string>("--engines") { Description = "Comma-separated engines to run: transactor, orleans-transactions, grain-calls (one trivial grain call per operation: the machine's ceiling); transactor-linked (a linked transfer of two legs: a payment and a fee from one account).", DefaultValueFactory = _ => "transactor,orleans-transactions,grain-calls" };

var roundsOption = new Option<int>("--rounds") { Description = "Runs the chosen transactor engines this many times in turn (transactor, transactor-linked, transactor, ...), for comparisons measured alternately.", DefaultValueFactory = _ => 1 };

var root = new RootCommand("Measures Transactor's transfers against Orleans' own transactions on an in-process silo with in-memory storage.")
{
    secondsOption, warmupOption, concurrencyOption, accountsOption, hotOption, seedOption, postgresOption, workloadsOption, engineOption, admitOption, directoryOption, ledgerStorageOption, historyOption, pageSizeOption, roundsOption,
};
root.SetAction(async (parse, cancellation) =>
{
    var settings = new Settings(
        TimeSpan.FromSeconds(parse.GetValue(secondsOption)),
        TimeSpan.FromSeconds(parse.GetValue(warmupOption)),
        parse.GetValue(concurrencyOption),
        parse.GetValue(seedOption),
        parse.GetValue(postgresOption),
        parse.GetValue(workloadsOption)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
        parse.GetValue(engineOption)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
        parse.GetValue(admitOption),
        parse.GetValue(directoryOption),
        parse.GetValue(ledgerStorageOption)!,
        !parse.GetValue(historyOption),
        parse.GetValue(pageSizeOption),
        Math.Max(1, parse.GetValue(roundsOption)));
    return await Bench.Run(settings, parse.GetValue(accountsOption), parse.GetValue(hotOption), cancellation);
});
return await root.Parse(args).InvokeAsync();

internal sealed record Settings(TimeSpan Measure, TimeSpan Warmup, int Concurrency, int Seed, string? Postgres, string[] Workloads, string[] Engines, int? MaxConcurrentTransfers, bool DistributedDirectory, string LedgerStorage, bool RecordHistory = true, int? HistoryPageSize = null, int Rounds = 1);

internal sealed record Row(string Workload, string Engine, long Committed, long Rejected, long Failed, double PerSecond, double P50Ms, double P99Ms, double MaxMs);

internal static class Bench
{
    private const long InitialBalanceMinor = 1_000_000_000;
    private const long MaxTransferMinor = 10_000;
    private const string TransactorEngine = "Transactor";
    private const string LinkedEngine = "Transactor 2-leg linked";
    private const string BaselineEngine = "Orleans transactions";
    private const string GrainCallsEngine = "trivial grain call";

    public static async Task<int> Run(Settings settings, int accounts, int hotAccounts, CancellationToken cancellation)
    {
        if (settings.Postgres is { } connectionString)
        {
            await LedgerSchema.MigrateAsync(connectionString, cancellation: cancellation);
        }

        using var host = Host.CreateDefaultBuilder()
            .ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning))
            .UseOrleans(silo =>
            {
                silo.UseLocalhostClustering();
                if (settings.DistributedDirectory)
                {
#pragma warning disable ORLEANSEXP003 // Measured here only: docs/transfers.md says why the ledger does not use it.
                    silo.AddDistributedGrainDirectory();
#pragma warning restore ORLEANSEXP003
                }

                silo.Configure<ClusterOptions>(o => o.ServiceId = $"bench-{Guid.NewGuid():N}");
                silo.AddTransactor(configure: options =>
                {
                    options.RecordHistory = settings.RecordHistory;
                    if (settings.HistoryPageSize is { } pageSize)
                    {
                        options.HistoryPageSize = pageSize;
                    }

                    if (settings.MaxConcurrentTransfers is { } admitted)
                    {
                        options.MaxConcurrentTransfers = admitted > 0 ? admitted : int.MaxValue;
                    }
                });
                // Both engines' state in the same binary encoding, so the comparison is of protocols.
                silo.Services.TryAddKeyedSingleton<IGrainStorageSerializer, LedgerStorageSerializer>("TransactionStore");
                silo.Services.AddPostgresConnectionTuning();
                if (settings.Postgres is { } postgres)
                {
                    // Orleans transactions always on Orleans' ADO.NET provider; the ledger on the chosen one.
                    var adoNetNames = new List<string> { "TransactionStore" };
                    if (IsBatched(settings))
                    {
                        silo.AddBatchedGrainStorage(StorageNames.Ledger, postgres);
                    }
                    else
                    {
                        adoNetNames.Add(StorageNames.Ledger);
                    }

                    foreach (var name in adoNetNames)
                    {
                        silo.AddAdoNetGrainStorage(name, o =>
                        {
                            o.Invariant = LedgerSchema.Invariant;
                            o.ConnectionString = postgres;
                        });
                    }

                    silo.UseAdoNetReminderService(o =>
                    {
                        o.Invariant = LedgerSchema.Invariant;
                        o.ConnectionString = postgres;
                    });
                }
                else
                {
                    silo.AddInMemoryLedgerStorage();
                    silo.AddInMemoryLedgerStorage("TransactionStore");
                    silo.UseInMemoryReminderService();
                }

                silo.UseTransactions();
            })
            .Build();
        await host.StartAsync(cancellation);
        var grains = host.Services.GetRequiredService<IGrainFactory>();

        Console.WriteLine($"# Transactor benchmark: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}");
        Console.WriteLine($"# {settings.Concurrency} transfers in flight, {settings.Warmup.TotalSeconds:0}s warm-up + {settings.Measure.TotalSeconds:0}s measured per row, seed {settings.Seed}");
        Console.WriteLine($"# account history: {(settings.RecordHistory ? $"recorded, pages of {settings.HistoryPageSize ?? Transactor.Domain.AccountBook.DefaultHistoryPageSize}" : "off (--no-history)")}");
        Console.WriteLine($"# storage: {(settings.Postgres is null ? "in memory" : IsBatched(settings) ? "PostgreSQL (ledger: batched provider; Orleans transactions: ADO.NET)" : "PostgreSQL (Orleans ADO.NET providers)")}");
        var batchedStorage = host.Services.GetKeyedService<IGrainStorage>(StorageNames.Ledger) as BatchedGrainStorage;
        Func<BatchedGrainStorageStatistics>? statements = batchedStorage is null ? null : () => batchedStorage.Statistics;
        var resultName = settings.Postgres is null ? "in-memory" : IsBatched(settings) ? "batched" : "adonet";
        Console.WriteLine($"# grain directory: {(settings.DistributedDirectory ? "distributed (strongly consistent, AddDistributedGrainDirectory)" : "Orleans' default")}");
        var admitted = host.Services.GetRequiredService<TransferAdmission>().Places;
        Console.WriteLine($"# the silo drives {(admitted == int.MaxValue ? "every movement at once" : $"{admitted} movements at once, the rest wait oldest first")} (Transactor:Transfers:MaxConcurrentTransfers); GC: {(GCSettings.IsServerGC ? "server" : "workstation")}, {(GCSettings.LatencyMode == GCLatencyMode.Batch ? "non-concurrent" : "concurrent")}");
        var rows = new List<Row>();
        var failures = new List<string>();
        foreach (var (name, count) in new[] { ("uniform", accounts), ("hot", hotAccounts) }.Where(w => settings.Workloads.Contains(w.Item1)))
        {
            var prefix = $"{name}-{Guid.NewGuid():N}";
            var ids = Enumerable.Range(0, count).Select(i => $"{prefix}-{i:D6}").ToArray();

            var single = settings.Engines.Contains("transactor");
            var linked = settings.Engines.Contains("transactor-linked");
            if (single || linked)
            {
                await Setup(ids, id => OpenAndFund(grains, id));
            }

            // Alternately, so that a drift of the shared machine's speed touches both engines alike.
            for (var round = 0; round < settings.Rounds && (single || linked); round++)
            {
                if (single)
                {
                    rows.Add(await Measure(name, TransactorEngine, settings, ids, (from, to, amount, n) => TransactorTransfer(grains, from, to, amount, n), resultName, statements));
                    failures.AddRange(await Audit(grains, ids, count * InitialBalanceMinor));
                }

                if (linked)
                {
                    rows.Add(await Measure(name, LinkedEngine, settings, ids, (from, to, amount, n) => LinkedTransfer(grains, ids, from, to, amount, n), resultName, statements));
                    failures.AddRange(await Audit(grains, ids, count * InitialBalanceMinor));
                }
            }

            if (settings.Engines.Contains("grain-calls") && settings.Postgres is null)
            {
                // References made once: Orleans' GetGrain<T> works the grain type out again on every
                // call (see LedgerGrains), which would lower the ceiling with work that is not a call.
                var echoes = ids.ToDictionary(id => "e-" + id, id => grains.GetGrain<IEchoGrain>("e-" + id), StringComparer.Ordinal);
                await Setup([.. echoes.Keys], id => echoes[id].Echo(0));
                rows.Add(await Measure(name, GrainCallsEngine, settings, [.. echoes.Keys], async (from, _, amount, _) =>
                    await echoes[from].Echo(amount) == amount ? Outcome.Committed : Outcome.Failed));
            }

            if (!settings.Engines.Contains("orleans-transactions"))
            {
                continue;
            }

            var baselineIds = ids.Select(id => "b-" + id).ToArray();
            await Setup(baselineIds, id => grains.GetGrain<IBaselineAccountGrain>(id).Deposit(InitialBalanceMinor));
            var baseline = await Measure(name, BaselineEngine, settings, baselineIds, (from, to, amount, _) => BaselineTransfer(grains, from, to, amount), "orleans-transactions");
            rows.Add(baseline);
            var baselineTotal = (await Task.WhenAll(baselineIds.Select(id => BaselineBalance(grains, id)))).Sum();
            if (baselineTotal != count * InitialBalanceMinor)
            {
                failures.Add($"baseline {name}: total {baselineTotal} != {count * InitialBalanceMinor}");
            }
        }

        Print(rows);
        await host.StopAsync(CancellationToken.None);
        foreach (var failure in failures)
        {
            Console.Error.WriteLine($"INVARIANT BROKEN: {failure}");
        }

        Console.WriteLine(failures.Count == 0 ? "Invariants hold: money conserved, nothing in flight, no negative balance." : "INVARIANTS BROKEN");
        return failures.Count == 0 ? 0 : 1;
    }

    private static async Task OpenAndFund(IGrainFactory grains, string id)
    {
        await grains.GetAccount(id).Open("USD", null);
        var funded = await grains.GetCoordinator().Execute(TransferRequest.Deposit($"fund-{id}", id, InitialBalanceMinor));
        if (funded.Status != TransferStatus.Committed)
        {
            throw new InvalidOperationException($"Funding {id}: {funded.Status} {funded.Reason}");
        }
    }

    private static async Task<Outcome> TransactorTransfer(IGrainFactory grains, string from, string to, long amount, long n)
    {
        var result = await grains.GetCoordinator().Execute(new TransferRequest($"{from}>{to}#{n}", from, to, amount, "USD"));
        return result.Status switch
        {
            TransferStatus.Committed => Outcome.Committed,
            TransferStatus.Rejected => Outcome.Rejected,
            _ => Outcome.Failed,
        };
    }

    /// <summary>A payment from <paramref name="from"/> to <paramref name="to"/> and a 1 % fee to a third account, linked: both or neither.</summary>
    private static async Task<Outcome> LinkedTransfer(IGrainFactory grains, string[] ids, string from, string to, long amount, long n)
    {
        var fee = ids[(int)(n % ids.Length)];
        for (var next = 1; fee == from || fee == to; next++)
        {
            fee = ids[(int)((n + next) % ids.Length)];
        }

        var request = TransferRequest.Linked($"{from}>{to}#{n}L", [new TransferLeg(from, to, amount, "USD"), new TransferLeg(from, fee, 1 + (amount / 100), "USD")]);
        var result = await grains.GetCoordinator().Execute(request);
        return result.Status switch
        {
            TransferStatus.Committed => Outcome.Committed,
            TransferStatus.Rejected => Outcome.Rejected,
            _ => Outcome.Failed,
        };
    }

    private static async Task<Outcome> BaselineTransfer(IGrainFactory grains, string from, string to, long amount)
    {
        try
        {
            return await grains.GetGrain<IBaselineTransferGrain>(0).Transfer(from, to, amount) ? Outcome.Committed : Outcome.Rejected;
        }
        catch (Exception ex) when (ex is OrleansTransactionException or TimeoutException)
        {
            return Outcome.Failed;
        }
    }

    /// <summary>
    /// Reads a baseline account once the transactions still queued on it after a run have drained:
    /// a read that joins behind one that aborts is aborted too, so it is retried for up to two minutes.
    /// </summary>
    private static async Task<long> BaselineBalance(IGrainFactory grains, string id)
    {
        var giveUp = Stopwatch.GetTimestamp() + (120 * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                return await grains.GetGrain<IBaselineAccountGrain>(id).GetAvailable();
            }
            catch (Exception ex) when (ex is OrleansTransactionException or TimeoutException && Stopwatch.GetTimestamp() < giveUp)
            {
                await Task.Delay(500);
            }
        }
    }

    private static async Task Setup(string[] ids, Func<string, Task> setup)
    {
        using var gate = new SemaphoreSlim(256);
        await Task.WhenAll(ids.Select(async id =>
        {
            await gate.WaitAsync();
            try
            {
                await setup(id);
            }
            finally
            {
                gate.Release();
            }
        }));
    }

    private static bool IsBatched(Settings settings) =>
        string.Equals(settings.LedgerStorage, BatchedGrainStorageRegistration.ProviderType, StringComparison.OrdinalIgnoreCase);

    /// <param name="resultName">The engine's name in the machine-readable <c>RESULT</c> line benchmarks/postgres.sh reads.</param>
    /// <param name="statements">The batched provider's counters (statements and flushes sent so far); without them each transaction is one statement.</param>
    private static async Task<Row> Measure(string workload, string engine, Settings settings, string[] ids, Func<string, string, long, long, Task<Outcome>> transfer, string? resultName = null, Func<BatchedGrainStorageStatistics>? statements = null)
    {
        var histogram = new LongConcurrentHistogram(1, TimeStamp.Minutes(1), 3);
        long committed = 0, rejected = 0, failed = 0, sequence = 0;
        var measuring = false;
        var start = Stopwatch.GetTimestamp();
        var warmupEnd = start + (long)(settings.Warmup.TotalSeconds * Stopwatch.Frequency);
        var end = warmupEnd + (long)(settings.Measure.TotalSeconds * Stopwatch.Frequency);

        var workers = Enumerable.Range(0, settings.Concurrency).Select(w => Task.Run(async () =>
        {
            var random = new Random(HashCode.Combine(settings.Seed, w));
            while (true)
            {
                var now = Stopwatch.GetTimestamp();
                if (now >= end)
                {
                    return;
                }

                var from = random.Next(ids.Length);
                var to = (from + 1 + random.Next(ids.Length - 1)) % ids.Length;
                var amount = random.NextInt64(1, MaxTransferMinor);
                var n = Interlocked.Increment(ref sequence);
                var outcome = await transfer(ids[from], ids[to], amount, n);
                var done = Stopwatch.GetTimestamp();
                if (now < warmupEnd)
                {
                    continue;
                }

                Volatile.Write(ref measuring, true);
                histogram.RecordValue(Math.Max(1, done - now));
                _ = outcome switch
                {
                    Outcome.Committed => Interlocked.Increment(ref committed),
                    Outcome.Rejected => Interlocked.Increment(ref rejected),
                    _ => Interlocked.Increment(ref failed),
                };
            }
        })).ToArray();
        // The collector's share of the measured window: what a latency tail owes to GC pauses.
        await Task.Delay(settings.Warmup);
        var gcBefore = GcSnapshot.Take();
        var databaseBefore = await DatabaseSnapshot.Take(settings.Postgres);
        var statementsBefore = statements?.Invoke() ?? default;
        await Task.WhenAll(workers);
        var statementsAfter = statements?.Invoke() ?? default;
        var statementsSent = statementsAfter.Writes + statementsAfter.Reads - statementsBefore.Writes - statementsBefore.Reads;
        var gc = GcSnapshot.Take() - gcBefore;
        var database = await DatabaseSnapshot.Take(settings.Postgres) - databaseBefore;

        var seconds = settings.Measure.TotalSeconds;
        double Ms(Func<long> ticks) => histogram.TotalCount == 0 ? double.NaN : ticks() * 1000.0 / Stopwatch.Frequency;
        var row = new Row(workload, engine, committed, rejected, failed, committed / seconds,
            Ms(() => histogram.GetValueAtPercentile(50)), Ms(() => histogram.GetValueAtPercentile(99)), Ms(histogram.GetMaxValue));
        Console.WriteLine($"  {workload,-8} {engine,-22} {row.PerSecond,10:N0}/s  p50 {row.P50Ms,7:N2} ms  p99 {row.P99Ms,7:N2} ms  max {row.MaxMs,8:N2} ms  (committed {committed:N0}, rejected {rejected:N0}, failed {failed:N0})");
        Console.WriteLine($"  {"",-8} {"",-22} latency: p90 {Ms(() => histogram.GetValueAtPercentile(90)):N2} ms, p95 {Ms(() => histogram.GetValueAtPercentile(95)):N2} ms, p99.9 {Ms(() => histogram.GetValueAtPercentile(99.9)):N2} ms");
        double Per(long count) => count / (double)Math.Max(1, committed + rejected + failed);
        Console.WriteLine($"  {"",-8} {"",-22} GC: {gc.Gen0:N0} gen0, {gc.Gen1:N0} gen1, {gc.Gen2:N0} gen2 collections, paused {gc.Paused.TotalMilliseconds:N0} ms ({gc.Paused / settings.Measure:P1} of the time), allocated {Per(gc.Allocated) / 1024.0:N1} KiB per transfer");
        // Processor time per transfer is steadier than transfers/s on a machine whose pace drifts: the figure to compare two builds or settings by.
        Console.WriteLine($"  {"",-8} {"",-22} processor: {Per(gc.Processor.Ticks) / TimeSpan.TicksPerMicrosecond:N1} µs per transfer ({gc.Processor / settings.Measure:N2} of {Environment.ProcessorCount} processors busy)");
        if (database is { } d)
        {
            var statementsPerTransfer = statements is null ? Per(d.Transactions) : Per(statementsSent);
            Console.WriteLine($"  {"",-8} {"",-22} database: {Per(d.Transactions):N2} transactions (commits), {statementsPerTransfer:N2} statements, {Per(d.Inserted):N2} rows inserted, {Per(d.Updated):N2} updated, {Per(d.Fetched):N2} fetched per transfer (pg_stat_database; its counters lag up to 1 s)");
            // Transactions count read-only ones too; what costs a WAL flush is a transaction that wrote.
            // The server's own count of WAL syncs (pg_stat_wal, the whole server: one benchmark at a time)
            // is the physical figure; the batched provider also knows its flushes of writes and of reads.
            var writeCommits = Per(statementsAfter.WriteFlushes - statementsBefore.WriteFlushes);
            var flushes = statements is null
                ? ""
                : $", of which {writeCommits:N2} wrote and {Per(statementsAfter.ReadFlushes - statementsBefore.ReadFlushes):N2} only read";
            Console.WriteLine($"  {"",-8} {"",-22} commits: {Per(d.Transactions):N2} transactions per transfer{flushes}; {Per(d.WalSyncs):N2} WAL syncs per transfer (pg_stat_wal)");
            if (resultName is not null)
            {
                var writeCommitsField = statements is null ? "" : FormattableString.Invariant($" writecommits={writeCommits:0.00}");
                Console.WriteLine(FormattableString.Invariant($"RESULT engine={resultName} workload={workload} tps={row.PerSecond:0} p99={row.P99Ms:0.0} commits={Per(d.Transactions):0.00} statements={statementsPerTransfer:0.00} walsyncs={Per(d.WalSyncs):0.00}{writeCommitsField}"));
            }
        }

        return row;
    }

    private static async Task<List<string>> Audit(IGrainFactory grains, string[] ids, long expectedTotalMinor)
    {
        var failures = new List<string>();
        var snapshots = await Task.WhenAll(ids.Select(id => grains.GetAccount(id).GetSnapshot()));
        long total = 0;
        foreach (var s in snapshots)
        {
            if (s is null)
            {
                failures.Add("an account is not open");
                continue;
            }

            total += s.TotalMinor;
            if (s.AvailableMinor < 0 || s.ReservedMinor != 0 || s.IncomingMinor != 0)
            {
                failures.Add($"{s.AccountId}: available {s.AvailableMinor}, reserved {s.ReservedMinor}, incoming {s.IncomingMinor}");
            }
        }

        if (total != expectedTotalMinor)
        {
            failures.Add($"total {total} != {expectedTotalMinor}");
        }

        return failures;
    }

    private static void Print(List<Row> rows)
    {
        Console.WriteLine();
        Console.WriteLine("| workload | engine | transfers/s | p50 ms | p99 ms | max ms | committed | rejected | failed |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            Console.WriteLine($"| {r.Workload} | {r.Engine} | {r.PerSecond:N0} | {r.P50Ms:N2} | {r.P99Ms:N2} | {r.MaxMs:N2} | {r.Committed:N0} | {r.Rejected:N0} | {r.Failed:N0} |");
        }

        foreach (var group in rows.GroupBy(r => r.Workload))
        {
            var singles = group.Where(r => r.Engine == TransactorEngine).ToArray();
            var linkeds = group.Where(r => r.Engine == LinkedEngine).ToArray();
            if (linkeds.Length > 0 && singles.Length > 0)
            {
                var ratios = singles.Zip(linkeds, (s, l) => l.PerSecond / s.PerSecond).ToArray();
                Console.WriteLine($"{group.Key}: 2-leg linked / single transfers per second, round by round: {string.Join(", ", ratios.Select(r => $"{r:N2}x"))}; over all rounds {linkeds.Sum(l => l.PerSecond) / singles.Sum(s => s.PerSecond):N2}x");
            }

            var t = group.FirstOrDefault(r => r.Engine == TransactorEngine);
            var b = group.FirstOrDefault(r => r.Engine == BaselineEngine);
            var c = group.FirstOrDefault(r => r.Engine == GrainCallsEngine);
            if (t is not null && b is not null)
            {
                // A baseline that failed more than 1 % of its transfers (they time out) has no rate worth dividing by.
                Console.WriteLine(b.Failed * 100 > b.Committed
                    ? $"{group.Key}: Orleans transactions failed {b.Failed:N0} transfers and committed {b.Committed:N0}; no ratio"
                    : $"{group.Key}: Transactor / Orleans transactions = {(b.PerSecond > 0 ? t.PerSecond / b.PerSecond : double.PositiveInfinity):N1}x");
            }

            if (t is not null && c is not null)
            {
                var calls = t.PerSecond * GrainCallCeiling.TransferGrainCalls;
                Console.WriteLine($"{group.Key}: Transactor's {GrainCallCeiling.TransferGrainCalls} grain calls per transfer = {calls:N0} calls/s, {calls / c.PerSecond:P0} of the {c.PerSecond:N0} trivial calls/s of this run");
            }
        }
    }

    /// <summary>The collector's counters and the processor time of the whole process (silo and load alike).</summary>
    private readonly record struct GcSnapshot(int Gen0, int Gen1, int Gen2, TimeSpan Paused, long Allocated, TimeSpan Processor)
    {
        public static GcSnapshot Take() => new(GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration(), GC.GetTotalAllocatedBytes(), Process.GetCurrentProcess().TotalProcessorTime);

        public static GcSnapshot operator -(GcSnapshot a, GcSnapshot b) => new(a.Gen0 - b.Gen0, a.Gen1 - b.Gen1, a.Gen2 - b.Gen2, a.Paused - b.Paused, a.Allocated - b.Allocated, a.Processor - b.Processor);
    }

    /// <summary>
    /// The benchmark database's counters in <c>pg_stat_database</c>: every statement the providers send
    /// is its own transaction, so transactions per transfer is statements per transfer.
    /// </summary>
    private readonly record struct DatabaseSnapshot(long Transactions, long Inserted, long Updated, long Fetched, long WalSyncs)
    {
        public static async Task<DatabaseSnapshot?> Take(string? connectionString)
        {
            if (connectionString is null)
            {
                return null;
            }

            await using var connection = new Npgsql.NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand(
                "SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_fetched, (SELECT wal_sync FROM pg_stat_wal) FROM pg_stat_database WHERE datname = current_database()",
                connection);
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            return new DatabaseSnapshot(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4));
        }

        public static DatabaseSnapshot? operator -(DatabaseSnapshot? a, DatabaseSnapshot? b) =>
            a is { } x && b is { } y ? new(x.Transactions - y.Transactions, x.Inserted - y.Inserted, x.Updated - y.Updated, x.Fetched - y.Fetched, x.WalSyncs - y.WalSyncs) : null;
    }

    private enum Outcome
    {
        Committed,
        Rejected,
        Failed,
    }
}
