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
    /// <summary>Bytes of one slab: over the large-object threshold, so a slab is never copied by a young collection.</summary>
    private const int SlabBytes = 1 << 20;

    /// <summary>Largest first write carved out of a slab; a larger one gets a buffer of its own.</summary>
    private const int MaxSlabRowBytes = 16 << 10;

    private readonly Lock _slabLock = new();
    private byte[] _slab = [];
    private int _slabUsed;

    internal ConcurrentDictionary<(string StateName, GrainId GrainId), StoredState> Rows { get; } = new();

    /// <summary>Number of grain states held.</summary>
    public int Count => Rows.Count;

    /// <summary>
    /// A new row holding <paramref name="data"/>. Its first bytes are carved out of a shared slab:
    /// most rows (every ended movement's) are written once and kept for good, and a buffer of their
    /// own would be a young object that every young collection copies until it is old.
    /// </summary>
    internal StoredState NewRow(ReadOnlySpan<byte> data, long version)
    {
        if (data.Length > MaxSlabRowBytes)
        {
            return new StoredState(ArrayPool<byte>.Shared.Rent(data.Length), 0, pooled: true, data, version);
        }

        byte[] slab;
        int offset;
        lock (_slabLock)
        {
            if (_slab.Length - _slabUsed < data.Length)
            {
                _slab = GC.AllocateUninitializedArray<byte>(SlabBytes);
                _slabUsed = 0;
            }

            slab = _slab;
            offset = _slabUsed;
            _slabUsed += data.Length;
        }

        return new StoredState(slab, offset, pooled: false, data, version);
    }

    /// <summary>
    /// One row: its bytes in a buffer that a write replaces in place, under the row's lock: first a
    /// region of a slab (<see cref="NewRow"/>), and once a write outgrows it, a pooled buffer.
    /// A row lives as long as the store, so a write that allocated a new object for the row would
    /// hand the collector a young object referenced from an old one: a copy at every young
    /// collection, and garbage for the old generation once it is replaced. Benchmarks spent a tenth
    /// of their time in such collections; see docs/benchmarks.md.
    /// </summary>
    internal sealed class StoredState
    {
        private byte[] _buffer;
        private int _offset;
        private int _capacity;
        private int _length;
        private bool _pooled;
        private bool _removed;

        public StoredState(byte[] buffer, int offset, bool pooled, ReadOnlySpan<byte> data, long version)
        {
            _buffer = buffer;
            _offset = offset;
            _capacity = pooled ? buffer.Length : data.Length;
            _pooled = pooled;
            data.CopyTo(_buffer.AsSpan(offset));
            _length = data.Length;
            Version = version;
        }

        public long Version { get; private set; }

        private ReadOnlySpan<byte> Bytes => _buffer.AsSpan(_offset, _length);

        /// <summary>A copy of the stored bytes.</summary>
        public byte[] Data
        {
            get
            {
                lock (this)
                {
                    return Bytes.ToArray();
                }
            }
        }

        public T Read<T>(Serializer serializer, out long version)
        {
            lock (this)
            {
                version = Version;
                return serializer.Deserialize<T>(Bytes)!;
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

                if (data.Length > _capacity)
                {
                    // A slab's region stays unused from now on; a pooled buffer goes back.
                    ReturnBuffer();
                    _buffer = ArrayPool<byte>.Shared.Rent(data.Length);
                    _offset = 0;
                    _capacity = _buffer.Length;
                    _pooled = true;
                }

                data.CopyTo(_buffer.AsSpan(_offset));
                _length = data.Length;
                return ++Version;
            }
        }

        /// <summary>Marks the row removed, so writes that still hold it fail, and gives a pooled buffer back.</summary>
        public void Remove()
        {
            lock (this)
            {
                _removed = true;
                ReturnBuffer();
                _buffer = [];
                _offset = _capacity = _length = 0;
            }
        }

        private void ReturnBuffer()
        {
            if (_pooled)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _pooled = false;
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
            var row = store.NewRow(data, version);
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
