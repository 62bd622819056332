using System.Buffers;
using Orleans.Serialization;

namespace Transactor.Grains;

/// <summary>
/// Writes a recovery shard's list (group commit: concurrent changes share a write), and knows when
/// the activation's list can no longer be trusted: after any failed write, which may have been
/// stored although it failed (its answer lost), the etag and the memory of the activation may not be
/// storage's, so nothing more is answered, and the failure is reported so that the activation is dropped.
/// Use it only from the shard's turns.
/// </summary>
internal sealed class ShardListStore
{
    private readonly IPersistentState<RecoveryShardState> _state;
    private readonly Serializer _serializer;
    private readonly IReadOnlyDictionary<string, ListedMovement> _listings;
    private readonly string _name;
    private readonly Action<Exception> _failed;
    private readonly GroupCommit _commit;
    private readonly RecoveryShardState _snapshot = new();
    private readonly ArrayBufferWriter<byte> _snapshotBytes = new();
    private readonly ArrayBufferWriter<byte> _encodeBytes = new();
    private Exception? _broken;

    public ShardListStore(
        IPersistentState<RecoveryShardState> state,
        Serializer serializer,
        IReadOnlyDictionary<string, ListedMovement> listings,
        string name,
        TimeSpan gatherDelay,
        TimeProvider time,
        Action<Exception> failed)
    {
        (_state, _serializer, _listings, _name, _failed) = (state, serializer, listings, name, failed);
        _commit = new GroupCommit(WriteOrBreak, gatherDelay, time);
    }

    /// <summary>True once a write has failed: see <see cref="ThrowIfBroken"/>.</summary>
    public bool Broken => _broken is not null;

    /// <summary>The listings storage held when the activation read its state.</summary>
    public List<ShardListing> Load() => _state.State.ReadListings(_serializer);

    /// <summary>
    /// Encodes <paramref name="listing"/> as the stored list holds it, now (the next write copies
    /// these bytes unless the listing changes first), and returns its size in bytes.
    /// </summary>
    public int Encode(string transferId, ListedMovement listing)
    {
        _encodeBytes.ResetWrittenCount();
        RecoveryShardState.Append(_serializer, new ShardListing(transferId, listing.ListedAt, listing.Record, listing.Epoch), _encodeBytes);
        listing.Encoded = _encodeBytes.WrittenSpan.ToArray();
        return listing.Encoded.Length;
    }

    /// <summary>Notes a change to the list; returns its number.</summary>
    public long Changed() => _commit.Changed();

    /// <summary>Returns once change number <paramref name="change"/> is in storage.</summary>
    public async Task Stored(long change)
    {
        ThrowIfBroken();
        await _commit.Persisted(change);
        ThrowIfBroken();
    }

    /// <summary>Returns once every change made so far is in storage (at once when it already is).</summary>
    public Task Durable() => Stored(_commit.Latest);

    /// <summary>Throws once a write of the list has failed: the next activation reads storage.</summary>
    public void ThrowIfBroken()
    {
        if (_broken is { } failure)
        {
            // Without the failure as inner exception: the caller may be in another process, and a
            // storage provider's exception need not cross it.
            throw new LedgerUnavailableException($"Recovery shard {_name} is reloading its list from storage after a failed write ({failure.GetType().Name}); retry.");
        }
    }

    private async Task WriteOrBreak()
    {
        ThrowIfBroken();
        try
        {
            await WriteSnapshot();
        }
        catch (Exception ex)
        {
            _broken = ex;
            _failed(ex);
            throw;
        }
    }

    /// <summary>
    /// Writes a copy of the list: turns that interleave with a write (the grain is reentrant) change
    /// the live list, never the one a storage provider may still be serializing. The copy is made
    /// in the same buffer every time: <see cref="GroupCommit"/> runs one write at a time, and a
    /// provider is done with the state when its write ends. A listing is encoded once, when it
    /// changes; a write copies those bytes.
    /// </summary>
    private Task WriteSnapshot()
    {
        _snapshotBytes.ResetWrittenCount();
        foreach (var (transferId, listing) in _listings)
        {
            if (listing.Encoded is { } encoded)
            {
                _snapshotBytes.Write(encoded);
            }
            else
            {
                var start = _snapshotBytes.WrittenCount;
                RecoveryShardState.Append(_serializer, new ShardListing(transferId, listing.ListedAt, listing.Record, listing.Epoch), _snapshotBytes);
                listing.Encoded = _snapshotBytes.WrittenSpan[start..].ToArray();
            }
        }

        // Only Listings is ever set on the snapshot: earlier versions' fields stay empty.
        _snapshot.Listings = _snapshotBytes.WrittenMemory;
        _state.State = _snapshot;
        return _state.WriteStateAsync();
    }
}
