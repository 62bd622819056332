using Orleans.Storage;

namespace Transactor.Persistence;

/// <summary>
/// Options of <see cref="BatchedGrainStorage"/>, per storage name. Configuration keys are those of
/// Orleans' ADO.NET grain storage (<c>Invariant</c>, <c>ConnectionString</c> or <c>ConnectionName</c>)
/// under <c>Orleans:GrainStorage:&lt;name&gt;</c> with <c>ProviderType=Batched</c>.
/// </summary>
public sealed class BatchedGrainStorageOptions : IStorageProviderSerializerOptions
{
    /// <summary>Writes (and clears) one flush sends at most: one <c>NpgsqlBatch</c>, one transaction.</summary>
    public const int DefaultMaxBatchWrites = 256;

    /// <summary>Reads one flush sends at most.</summary>
    public const int DefaultMaxBatchReads = 256;

    /// <summary>Payload bytes one flush of writes carries at most (a single larger write goes alone).</summary>
    public const int DefaultMaxBatchBytes = 4 * 1024 * 1024;

    /// <summary>Operations that may wait for a flush, reads and writes each; one more fails at once.</summary>
    public const int DefaultMaxQueuedOperations = 16_384;

    /// <summary>The ADO.NET invariant; only <c>Npgsql</c> is supported.</summary>
    public string Invariant { get; set; } = LedgerSchema.Invariant;

    /// <summary>The Npgsql connection string; tuned by <see cref="PostgresConnections.Tune"/>.</summary>
    public string? ConnectionString { get; set; }

    public int MaxBatchWrites { get; set; } = DefaultMaxBatchWrites;

    public int MaxBatchReads { get; set; } = DefaultMaxBatchReads;

    public int MaxBatchBytes { get; set; } = DefaultMaxBatchBytes;

    public int MaxQueuedOperations { get; set; } = DefaultMaxQueuedOperations;

    /// <summary>The silo lifecycle stage at which the provider opens its data source.</summary>
    public int InitStage { get; set; } = ServiceLifecycleStage.ApplicationServices;

    /// <inheritdoc />
    public IGrainStorageSerializer GrainStorageSerializer { get; set; } = null!;
}
