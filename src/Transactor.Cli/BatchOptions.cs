using Transactor.Domain;

namespace Transactor.Cli;

/// <summary>How <see cref="BatchEngine"/> runs.</summary>
public sealed record BatchOptions
{
    /// <summary>The most partitions (worker loops, each owning a share of the clients).</summary>
    public const int MaxPartitions = 64;

    /// <summary>Rows per batch handed from the reader to a partition: 64 KiB of 16-byte rows, so channel costs are per 4,096 rows.</summary>
    public const int DefaultBatchRows = 4096;

    /// <summary>Batches a partition's channel holds before the reader waits: the pipeline's only buffer, and its backpressure.</summary>
    public const int DefaultChannelBatches = 8;

    /// <summary>Number of partitions; clients are spread by <c>client % Partitions</c>.</summary>
    public int Partitions { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, MaxPartitions);

    /// <summary>Stop at the first malformed row instead of reporting it and going on.</summary>
    public bool Strict { get; init; }

    /// <summary>Rows per batch.</summary>
    public int BatchRows { get; init; } = DefaultBatchRows;

    /// <summary>Channel capacity, in batches, per partition.</summary>
    public int ChannelBatches { get; init; } = DefaultChannelBatches;

    /// <summary>Check <see cref="AccountBook.AssertBatchInvariants"/> after every row (tests), not only once per account at the end.</summary>
    public bool CheckInvariantsEveryRow { get; init; }

    /// <summary>Write a progress line to standard error this often; null for none.</summary>
    public TimeSpan? ProgressInterval { get; init; }

    /// <summary>Throws when an option is out of range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Partitions, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Partitions, MaxPartitions);
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchRows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ChannelBatches, 1);
    }
}

/// <summary>How a run ended.</summary>
public enum BatchStatus
{
    /// <summary>Every line was read; accounts were written.</summary>
    Completed = 0,

    /// <summary><see cref="BatchOptions.Strict"/> and a malformed row: nothing was written.</summary>
    StoppedAtMalformedRow = 1,

    /// <summary>The first line is not the header <c>type, client, tx, amount</c>: nothing was written.</summary>
    BadHeader = 2,
}

/// <summary>What a run did.</summary>
/// <param name="Lines">Lines read, header and blank lines included.</param>
/// <param name="Rows">Well-formed rows applied or ignored by the rules.</param>
/// <param name="MalformedRows">Rows reported as malformed and skipped.</param>
/// <param name="Outcomes">Rows by <see cref="BatchOutcome"/>, indexed by its value.</param>
/// <param name="Accounts">Accounts written (clients that appear in a well-formed row).</param>
public sealed record BatchSummary(
    BatchStatus Status,
    long Lines,
    long Rows,
    long MalformedRows,
    IReadOnlyList<long> Outcomes,
    int Accounts,
    TimeSpan Elapsed,
    BatchTimings Timings)
{
    /// <summary>Rows that changed an account.</summary>
    public long Applied => Outcomes[(int)BatchOutcome.Applied];

    /// <summary>Rows the rules ignored.</summary>
    public long Ignored => Rows - Applied;
}

/// <summary>Where a run's time went, measured per batch (not per row), so cheaply.</summary>
/// <param name="Reading">The reader thread reading, parsing, claiming ids and routing.</param>
/// <param name="ReaderBlocked">The reader waiting on full channels: the partitions were the bottleneck.</param>
/// <param name="Applying">Partitions applying rows, summed over partitions.</param>
/// <param name="Checking">The end-of-run invariant check, summed over partitions.</param>
/// <param name="Writing">Formatting and writing the accounts.</param>
public sealed record BatchTimings(TimeSpan Reading, TimeSpan ReaderBlocked, TimeSpan Applying, TimeSpan Checking, TimeSpan Writing);
