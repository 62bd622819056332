using System.Buffers;
using Orleans.Serialization;
using Transactor.Domain;

namespace Transactor.Grains;

/// <summary>
/// The persisted state of a <see cref="RecoveryShardGrain"/>: the movements it lists. This version
/// writes them in <see cref="Listings"/>; earlier versions wrote <see cref="InFlight"/> and
/// <see cref="Records"/>, which are still read.
/// </summary>
[GenerateSerializer, Alias("Transactor.RecoveryShardState")]
public sealed class RecoveryShardState
{
    /// <summary>Earlier versions: movements that have begun and not ended, with when they were listed.</summary>
    [Id(0)] public Dictionary<string, DateTimeOffset> InFlight { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Earlier versions: the records of listed movements. A listed id without one was listed by a
    /// version before those, which kept the record in the movement's own row.
    /// </summary>
    [Id(1)] public Dictionary<string, TransferRecord>? Records { get; set; }

    /// <summary>
    /// The listed movements, each a <see cref="ShardListing"/> in a <see cref="Frames">frame</see>.
    /// A shard encodes a listing once, when it changes, and a write of the list copies those bytes:
    /// serializing the whole list as one object graph at every write cost a fifth of the
    /// benchmark's allocations (reference tracking of its strings).
    /// </summary>
    [Id(2)] public ReadOnlyMemory<byte> Listings { get; set; }

    /// <summary>Every listed movement, from whichever encoding wrote it.</summary>
    public List<ShardListing> ReadListings(Serializer serializer)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        var listings = new List<ShardListing>(InFlight.Count);
        foreach (var (transferId, listedAt) in InFlight)
        {
            listings.Add(new ShardListing(transferId, listedAt, Records?.GetValueOrDefault(transferId)));
        }

        var packed = Listings.Span;
        while (!packed.IsEmpty)
        {
            listings.Add(serializer.Deserialize<ShardListing>(Frames.Next(packed, out packed))
                ?? throw new InvalidDataException("A recovery shard's stored list holds an empty listing."));
        }

        return listings;
    }

    /// <summary>Appends one listing to <paramref name="listings"/> as <see cref="Listings"/> holds it.</summary>
    public static void Append(Serializer serializer, ShardListing listing, ArrayBufferWriter<byte> listings) =>
        Frames.Append(serializer, listing, listings);
}

/// <summary>
/// A movement a recovery shard lists: since when, its record (null for a listing of a version that
/// kept the record in the movement's row), and the epoch of the latest lease handed out on it (0
/// for a listing of an earlier version: none).
/// </summary>
[GenerateSerializer, Immutable, Alias("Transactor.ShardListing")]
public sealed record ShardListing(
    [property: Id(0)] string TransferId,
    [property: Id(1)] DateTimeOffset ListedAt,
    [property: Id(2)] TransferRecord? Record,
    [property: Id(3)] long Epoch = 0);
