using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Orleans.Configuration;
using Orleans.Configuration.Overrides;
using Orleans.Serialization.Serializers;
using Orleans.Storage;

namespace Transactor.Persistence;

/// <summary>
/// Grain storage on PostgreSQL with group commit across grains. Writes of all grains of the silo that
/// arrive while a flush is in flight go together as the next flush: one <see cref="NpgsqlBatch"/>,
/// one round trip, one implicit transaction, one commit. Reads are gathered the same way. Rows,
/// statements and ETag rules are those of Orleans' ADO.NET provider on Transactor's schema
/// (<c>Migrations/</c>), so either provider reads what the other wrote. docs/persistence.md.
/// </summary>
/// <remarks>
/// A version conflict is a statement that returns no row, never an error, so it fails its own write
/// and the rest of the batch commits. An error aborts the transaction: every write in it fails with
/// that exception and none is acknowledged. A batch's statements go in one order of the row identity
/// on every silo, so two silos' batches lock shared rows in the same order and cannot deadlock.
/// </remarks>
public sealed partial class BatchedGrainStorage : IGrainStorage, ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    // The statements of Orleans' provider on this schema (migrations 001 and 003), positional.
    private const string ReadSql =
        "SELECT s.payload, s.version FROM orleans_grain_state s WHERE s.grain_key = orleans_grain_state_key($1, $2, $3, $4, $5) AND s.service_id = $1";

    private const string WriteSql =
        "SELECT v FROM orleans_write_grain_state($1, $2, $3, $4, $5, $6, $7, $8, $9) AS v";

    private const string ClearSql =
        "UPDATE orleans_grain_state s SET payload = NULL, version = CASE WHEN s.version = 2147483647 THEN 1 ELSE s.version + 1 END, modified_at = now() " +
        "WHERE s.grain_key = orleans_grain_state_key($1, $2, $3, $4, $5) AND s.service_id = $1 AND s.version = $6 RETURNING s.version";

    private readonly string _name;
    private readonly string _serviceId;
    private readonly BatchedGrainStorageOptions _options;
    private readonly IActivatorProvider _activators;
    private readonly ILogger<BatchedGrainStorage> _logger;
    private readonly GroupCommitQueue<RowWrite> _writes;
    private readonly GroupCommitQueue<RowRead> _reads;
    private NpgsqlDataSource? _dataSource;

    public BatchedGrainStorage(string name, BatchedGrainStorageOptions options, IOptions<ClusterOptions> cluster, IActivatorProvider activators, ILogger<BatchedGrainStorage> logger)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cluster);
        if (options.Invariant != LedgerSchema.Invariant)
        {
            throw new ArgumentException($"Grain storage '{name}': the batched provider supports only Invariant={LedgerSchema.Invariant}, not {options.Invariant}.", nameof(options));
        }

        _name = name;
        _serviceId = cluster.Value.ServiceId;
        _options = options;
        _activators = activators;
        _logger = logger;
        var description = $"Grain storage '{name}'";
        _writes = new GroupCommitQueue<RowWrite>(FlushWrites, (w, ex) => w.Done.TrySetException(ex), w => w.Payload?.Length ?? 0,
            options.MaxBatchWrites, options.MaxBatchBytes, options.MaxQueuedOperations, description);
        _reads = new GroupCommitQueue<RowRead>(FlushReads, (r, ex) => r.Done.TrySetException(ex), _ => 0,
            options.MaxBatchReads, long.MaxValue, options.MaxQueuedOperations, description);
    }

    /// <summary>What the provider has sent so far: flushes (each one transaction) and operations.</summary>
    public BatchedGrainStorageStatistics Statistics => new(_writes.Flushes, _writes.Operations, _writes.LargestFlush, _reads.Flushes, _reads.Operations);

    public static BatchedGrainStorage Create(IServiceProvider services, string name)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.GetRequiredService<IOptionsMonitor<BatchedGrainStorageOptions>>().Get(name);
        return ActivatorUtilities.CreateInstance<BatchedGrainStorage>(services, name, options, services.GetProviderClusterOptions(name));
    }

    public void Participate(ISiloLifecycle lifecycle)
    {
        ArgumentNullException.ThrowIfNull(lifecycle);
        lifecycle.Subscribe($"{nameof(BatchedGrainStorage)}-{_name}", _options.InitStage, Open, Close);
    }

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        var read = new RowRead(Identity(stateName, grainId));
        _reads.Enqueue(read);
        RowContent row;
        try
        {
            row = await read.Done.Task;
        }
        catch (Exception ex)
        {
            LogReadFailed(_logger, ex, _name, stateName, read.Row.Key.ToString());
            throw;
        }

        grainState.State = row.Payload is { } payload ? _options.GrainStorageSerializer.Deserialize<T>(new BinaryData(payload)) : NewState<T>();
        grainState.ETag = row.Version?.ToString(CultureInfo.InvariantCulture);
        // As Orleans' provider (10.4.2): a cleared row (no payload) reads as no record, with its version as the ETag.
        grainState.RecordExists = row.Payload is not null;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        var payload = _options.GrainStorageSerializer.Serialize(grainState.State).ToArray();
        var version = await Write(new RowWrite(Identity(stateName, grainId), ParseETag(grainState.ETag), payload, Clear: false), "WriteState");
        grainState.ETag = version;
        grainState.RecordExists = true;
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        if (!grainState.RecordExists)
        {
            // As Orleans' provider: a grain that believes there is no row reads first, and clears
            // nothing if there is none.
            await ReadStateAsync(stateName, grainId, grainState);
            if (!grainState.RecordExists)
            {
                return;
            }
        }

        var version = await Write(new RowWrite(Identity(stateName, grainId), ParseETag(grainState.ETag), null, Clear: true), "ClearState");
        grainState.ETag = version;
        grainState.RecordExists = false;
        grainState.State = NewState<T>();
    }

    public void Dispose() => _dataSource?.Dispose();

    private async Task<string> Write(RowWrite write, string operation)
    {
        _writes.Enqueue(write);
        int? stored;
        try
        {
            stored = await write.Done.Task;
        }
        catch (Exception ex)
        {
            LogWriteFailed(_logger, ex, _name, write.Row.StateName, write.Row.Key.ToString());
            throw;
        }

        var version = stored?.ToString(CultureInfo.InvariantCulture);
        var etag = write.Version?.ToString(CultureInfo.InvariantCulture);
        if (version is null || version == etag)
        {
            throw new InconsistentStateException(
                $"Version conflict ({operation}): ServiceId={_serviceId} ProviderName={_name} GrainType={write.Row.StateName} GrainId={write.Row.Key} ETag={etag}.");
        }

        return version;
    }

    private RowIdentity Identity(string stateName, GrainId grainId)
    {
        ArgumentException.ThrowIfNullOrEmpty(stateName);
        if (stateName.Contains('`', StringComparison.Ordinal))
        {
            // Orleans' provider rewrites generic type names before storing them; Transactor's state
            // names never are, and a rewrite that is not exactly Orleans' would address another row.
            throw new ArgumentException($"Grain storage '{_name}' does not store generic state names ({stateName}).", nameof(stateName));
        }

        return new RowIdentity(stateName, GrainRowKey.From(grainId));
    }

    private T NewState<T>() => _activators.GetActivator<T>().Create();

    private static int? ParseETag(string? etag) =>
        string.IsNullOrWhiteSpace(etag) ? null : int.Parse(etag, CultureInfo.InvariantCulture);

    private NpgsqlDataSource DataSource => _dataSource ?? throw new InvalidOperationException($"Grain storage '{_name}' is not open yet.");

    private Task Open(CancellationToken cancellation)
    {
        if (string.IsNullOrEmpty(_options.ConnectionString))
        {
            throw new InvalidOperationException($"Grain storage '{_name}' has no connection string (ConnectionString or ConnectionName).");
        }

        _dataSource = NpgsqlDataSource.Create(PostgresConnections.Tune(_options.ConnectionString));
        LogOpened(_logger, _name, _serviceId, _options.MaxBatchWrites, _options.MaxBatchBytes);
        return Task.CompletedTask;
    }

    private Task Close(CancellationToken cancellation) => Task.CompletedTask;

    private async Task FlushWrites(IReadOnlyList<RowWrite> writes)
    {
        // One order of the row identity on every silo: batches that share rows lock them in the same
        // order. Stable, so two writes of one row keep their order (the second then conflicts).
        var ordered = writes.OrderBy(w => w.Row, RowIdentity.Order).ToArray();
        await using var connection = await DataSource.OpenConnectionAsync();
        // Without an explicit transaction, the statements of one batch up to its single Sync are one
        // implicit transaction: one round trip, one commit, and an error rolls back all of them.
        await using var batch = new NpgsqlBatch(connection);
        foreach (var write in ordered)
        {
            var command = new NpgsqlBatchCommand(write.Clear ? ClearSql : WriteSql);
            AddIdentity(command.Parameters, write.Row);
            if (write.Clear)
            {
                command.Parameters.Add(new NpgsqlParameter<int?> { NpgsqlDbType = NpgsqlDbType.Integer, TypedValue = write.Version });
            }
            else
            {
                command.Parameters.Add(new NpgsqlParameter<int> { NpgsqlDbType = NpgsqlDbType.Integer, TypedValue = StableHashOf(write.Row.Key.HashBytes()) });
                command.Parameters.Add(new NpgsqlParameter<int> { NpgsqlDbType = NpgsqlDbType.Integer, TypedValue = StableHashOf(Encoding.UTF8.GetBytes(write.Row.StateName)) });
                command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Integer, Value = (object?)write.Version ?? DBNull.Value });
                command.Parameters.Add(new NpgsqlParameter<byte[]> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = write.Payload });
            }

            batch.BatchCommands.Add(command);
        }

        var versions = new int?[ordered.Length];
        await using (var reader = await batch.ExecuteReaderAsync())
        {
            for (var i = 0; i < ordered.Length; i++)
            {
                versions[i] = await reader.ReadAsync() && !await reader.IsDBNullAsync(0) ? reader.GetInt32(0) : null;
                await reader.NextResultAsync();
            }
        }

        // Only now, after the reader has seen the batch's end (its commit), is anything acknowledged.
        for (var i = 0; i < ordered.Length; i++)
        {
            ordered[i].Done.TrySetResult(versions[i]);
        }
    }

    private async Task FlushReads(IReadOnlyList<RowRead> reads)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var batch = new NpgsqlBatch(connection);
        foreach (var read in reads)
        {
            var command = new NpgsqlBatchCommand(ReadSql);
            AddIdentity(command.Parameters, read.Row);
            batch.BatchCommands.Add(command);
        }

        var rows = new RowContent[reads.Count];
        await using (var reader = await batch.ExecuteReaderAsync())
        {
            for (var i = 0; i < reads.Count; i++)
            {
                rows[i] = await reader.ReadAsync()
                    ? new RowContent(await reader.IsDBNullAsync(0) ? null : reader.GetFieldValue<byte[]>(0), reader.GetInt32(1))
                    : new RowContent(null, null);
                await reader.NextResultAsync();
            }
        }

        for (var i = 0; i < reads.Count; i++)
        {
            reads[i].Done.TrySetResult(rows[i]);
        }
    }

    private void AddIdentity(NpgsqlParameterCollection parameters, RowIdentity row)
    {
        parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = _serviceId });
        parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = row.StateName });
        parameters.Add(new NpgsqlParameter<long> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = row.Key.N0 });
        parameters.Add(new NpgsqlParameter<long> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = row.Key.N1 });
        parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = (object?)row.Key.Ext ?? DBNull.Value });
    }

    private static int StableHashOf(byte[] bytes) => unchecked((int)StableHash.ComputeHash(bytes));

    private sealed record RowIdentity(string StateName, GrainRowKey Key)
    {
        public static readonly IComparer<RowIdentity> Order = Comparer<RowIdentity>.Create((a, b) =>
        {
            var c = string.CompareOrdinal(a.StateName, b.StateName);
            c = c != 0 ? c : a.Key.N0.CompareTo(b.Key.N0);
            c = c != 0 ? c : a.Key.N1.CompareTo(b.Key.N1);
            return c != 0 ? c : string.CompareOrdinal(a.Key.Ext, b.Key.Ext);
        });
    }

    private sealed record RowWrite(RowIdentity Row, int? Version, byte[]? Payload, bool Clear)
    {
        public TaskCompletionSource<int?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record RowRead(RowIdentity Row)
    {
        public TaskCompletionSource<RowContent> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly record struct RowContent(byte[]? Payload, int? Version);
}

/// <summary>Counters of a <see cref="BatchedGrainStorage"/> since it started.</summary>
public readonly record struct BatchedGrainStorageStatistics(long WriteFlushes, long Writes, int LargestWriteFlush, long ReadFlushes, long Reads);
