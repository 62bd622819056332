using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using Orleans.Serialization;
using Orleans.Storage;

namespace Transactor.Grains;

/// <summary>
/// A process-wide in-memory store for grain state: what the embedded ledger, the tests and the
/// benchmarks use instead of a database. Silos of one process that share an instance see one
/// store, which outlives any of them, as a database would. Not durable across processes.
/// </summary>
public sealed class InMemoryLedgerStore
{
    internal ConcurrentDictionary<(string StateName, GrainId GrainId), StoredState> Rows { get; } = new();

    /// <summary>Number of grain states held.</summary>
    public int Count => Rows.Count;

    /// <summary>
    /// One row: its bytes in a pooled buffer that a write replaces in place, under the row's lock.
    /// A row lives as long as the store, so a write that allocated a new object for the row would
    /// hand the collector a young object referenced from an old one: a copy at every young
    /// collection, and garbage for the old generation once it is replaced. Benchmarks spent a tenth
    /// of their time in such collections; see docs/benchmarks.md.
    /// </summary>
    internal sealed class StoredState
    {
        private byte[] _buffer;
        private int _length;
        private bool _removed;

        public StoredState(ReadOnlySpan<byte> data, long version)
        {
            _buffer = ArrayPool<byte>.Shared.Rent(data.Length);
            data.CopyTo(_buffer);
            _length = data.Length;
            Version = version;
        }

        public long Version { get; private set; }

        /// <summary>A copy of the stored bytes.</summary>
        public byte[] Data
        {
            get
            {
                lock (this)
                {
                    return _buffer.AsSpan(0, _length).ToArray();
                }
            }
        }

        public T Read<T>(Serializer serializer, out long version)
        {
            lock (this)
            {
                version = Version;
                return serializer.Deserialize<T>(_buffer.AsSpan(0, _length))!;
            }
        }

        /// <summary>Replaces the bytes when the row holds <paramref name="expected"/>; returns the new version, or null.</summary>
        public long? Replace(ReadOnlySpan<byte> data, string expected)
        {
            lock (this)
            {
                if (_removed || Version.ToString(CultureInfo.InvariantCulture) != expected)
                {
                    return null;
                }

                if (data.Length > _buffer.Length)
                {
                    ArrayPool<byte>.Shared.Return(_buffer);
                    _buffer = ArrayPool<byte>.Shared.Rent(data.Length);
                }

                data.CopyTo(_buffer);
                _length = data.Length;
                return ++Version;
            }
        }

        /// <summary>Marks the row removed, so writes that still hold it fail, and gives its buffer back.</summary>
        public void Remove()
        {
            lock (this)
            {
                _removed = true;
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = [];
                _length = 0;
            }
        }
    }
}

/// <summary>
/// <see cref="IGrainStorage"/> over an <see cref="InMemoryLedgerStore"/>, with optimistic concurrency
/// on an etag like the database providers. State is stored serialized, so no grain shares an object with the store.
/// </summary>
public sealed class InMemoryGrainStorage(InMemoryLedgerStore store, Serializer serializer) : IGrainStorage
{
    /// <summary>Largest scratch buffer a thread keeps between writes.</summary>
    private const int MaxScratchBytes = 1 << 20;

    /// <summary>Where a write serializes before it copies into its row; one per thread, reused.</summary>
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_scratch;

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        if (store.Rows.TryGetValue((stateName, grainId), out var row))
        {
            grainState.State = row.Read<T>(serializer, out var version);
            grainState.ETag = version.ToString(CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
        }
        else
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
        }

        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        var key = (stateName, grainId);
        var scratch = t_scratch ??= new ArrayBufferWriter<byte>(1024);
        scratch.ResetWrittenCount();
        serializer.Serialize(grainState.State, scratch);
        var data = scratch.WrittenSpan;
        var expected = grainState.ETag;
        long version;
        if (expected is null)
        {
            version = 1;
            var row = new InMemoryLedgerStore.StoredState(data, version);
            if (!store.Rows.TryAdd(key, row))
            {
                row.Remove();
                throw Inconsistent(stateName, grainId, expected, store.Rows.TryGetValue(key, out var now) ? now.Version : null);
            }
        }
        else
        {
            if (!store.Rows.TryGetValue(key, out var current) || current.Replace(data, expected) is not { } replaced)
            {
                throw Inconsistent(stateName, grainId, expected, store.Rows.TryGetValue(key, out var now) ? now.Version : null);
            }

            version = replaced;
        }

        if (scratch.Capacity > MaxScratchBytes)
        {
            // One huge state must not pin its buffer to the thread for good.
            t_scratch = null;
        }

        grainState.ETag = version.ToString(CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        if (store.Rows.TryRemove((stateName, grainId), out var removed))
        {
            removed.Remove();
        }

        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
        return Task.CompletedTask;
    }

    private static InconsistentStateException Inconsistent(string stateName, GrainId grainId, string? expected, long? actual) =>
        new($"State '{stateName}' of {grainId}: expected version {expected ?? "none"}, store holds {actual?.ToString(CultureInfo.InvariantCulture) ?? "none"}.",
            actual?.ToString(CultureInfo.InvariantCulture) ?? string.Empty,
            expected ?? string.Empty);
}
