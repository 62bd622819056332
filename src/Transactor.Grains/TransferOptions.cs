namespace Transactor.Grains;

/// <summary>Timing of the transfer protocol (see docs/transfers.md). Configuration section <c>Transactor:Transfers</c>.</summary>
public sealed class TransferOptions
{
    public const string SectionName = "Transactor:Transfers";

    /// <summary>How long one coordinator may drive a movement before another may take over.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Taken off the lease when a coordinator sets the deadline of its prepares, so that a clock on
    /// another silo that runs this much ahead cannot accept a prepare after the lease has ended.
    /// </summary>
    public TimeSpan ClockSkewAllowance { get; set; } = TimeSpan.FromSeconds(2);

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

    /// <summary>How long a retry waits for a movement that another coordinator is driving.</summary>
    public TimeSpan WaitTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
