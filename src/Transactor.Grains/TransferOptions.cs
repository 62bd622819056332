namespace Transactor.Grains;

/// <summary>Timing of the transfer protocol (see docs/transfers.md). Configuration section <c>Transactor:Transfers</c>.</summary>
public sealed class TransferOptions
{
    public const string SectionName = "Transactor:Transfers";

    /// <summary>
    /// How long one coordinator may drive a movement before another may take over. Liveness only:
    /// a lease taken over is fenced by its epoch, whatever the clocks and pauses (docs/transfers.md).
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>When the recovery reminder of a movement first fires.</summary>
    public TimeSpan RecoveryDueTime { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How often the recovery reminder fires after that, until the movement has ended.</summary>
    public TimeSpan RecoveryPeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long a recovery shard gathers changes (movements listed and decided) before it writes
    /// them in one storage write. A few milliseconds of latency buy fewer writes, which is what a
    /// busy database runs out of first (docs/benchmarks.md). The in-memory store sets zero: its
    /// writes cost no round trip, so waiting would only add latency.
    /// </summary>
    public TimeSpan RecoveryWriteDelay { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// How many movements a silo's coordinators drive at once for their callers (recovery is not
    /// counted). Unset: <see cref="InMemoryPlacesPerProcessor"/> per processor with in-memory
    /// ledger storage, where a movement only needs the processors, and
    /// <see cref="PlacesPerProcessor"/> with a database, where most of a movement's time is spent
    /// waiting on it (docs/benchmarks.md measures both).
    /// </summary>
    public int? MaxConcurrentTransfers { get; set; }

    /// <summary>Places per processor when <see cref="MaxConcurrentTransfers"/> is unset and the ledger is stored in a database.</summary>
    public const int PlacesPerProcessor = 32;

    /// <summary>Places per processor when <see cref="MaxConcurrentTransfers"/> is unset and the ledger is stored in memory.</summary>
    public const int InMemoryPlacesPerProcessor = 8;

    /// <summary>
    /// How many movements wait, oldest first, for one of those places. A movement beyond that is
    /// refused at once (<see cref="LedgerOverloadedException"/>, HTTP 429), with nothing recorded.
    /// A waiting movement costs a few hundred bytes; at the in-memory rate the whole queue drains
    /// in well under a second, on PostgreSQL in a few seconds, within Orleans' 30 s response timeout.
    /// </summary>
    public int MaxQueuedTransfers { get; set; } = 10_000;

    /// <summary>
    /// Whether <see cref="MaxConcurrentTransfers"/> stays fixed (the default) or is where an
    /// adaptive limit starts (section <c>Transactor:Transfers:Admission</c>). The latency it
    /// watches runs from a movement's admission to its end, queueing in the silo not included.
    /// </summary>
    public ConcurrencyLimitOptions Admission { get; set; } = new();

    /// <summary>How long a retry waits for a movement that another coordinator is driving.</summary>
    public TimeSpan WaitTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long <see cref="ITransferCoordinatorGrain.ExecuteMany"/> waits for its items before it
    /// answers those still running as unavailable (they go on; a retry of the id learns the outcome).
    /// Under the caller's 30-s response timeout (<see cref="CallTimeouts.Patient"/>). Liveness only.
    /// </summary>
    public TimeSpan BatchItemDeadline { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>
    /// Whether accounts record their history (<c>GET /accounts/{id}/entries</c>). On by default; off
    /// only to measure what it costs (docs/benchmarks.md). Entries applied while it is off are not
    /// recorded, and an account's history starts again when it is turned on.
    /// </summary>
    public bool RecordHistory { get; set; } = true;

    /// <summary>
    /// Entries per history page for accounts whose history starts from now on (an account keeps the
    /// size it started with): the account's row carries up to this many entries before they move to
    /// a page row of their own, one extra write per page. From 1 to <c>AccountBook.MaxHistoryPageSize</c>.
    /// </summary>
    public int HistoryPageSize { get; set; } = Domain.AccountBook.DefaultHistoryPageSize;

    /// <summary>
    /// The most history entries one read filtered by metadata looks at (<c>?metadata.key=value</c>),
    /// matching or not, so that a filter that matches nothing in a long history costs one request no
    /// more than the largest unfiltered page: that many entries, their page rows read one by one. The
    /// answer then carries a cursor to continue from, with fewer matches, or none. From 1 to
    /// <see cref="AccountHistoryGrain.MaxEntriesPerRead"/>.
    /// </summary>
    public int HistoryScanPerRead { get; set; } = AccountHistoryGrain.MaxEntriesPerRead;
}
