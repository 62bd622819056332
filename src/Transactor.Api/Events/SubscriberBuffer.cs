using System.Threading.Channels;

namespace Transactor.Api.Events;

/// <summary>
/// One subscriber's buffer of items not yet written to it: at most its capacity; when full, the
/// oldest item is dropped and counted, so a slow or stuck client costs a bounded amount of memory
/// and hears how many it missed (<see cref="TakeMissed"/>).
/// </summary>
public sealed class SubscriberBuffer<T>
{
    private readonly Channel<T> _items;
    private long _missed;

    public SubscriberBuffer(int capacity)
    {
        Capacity = capacity;
        _items = Channel.CreateBounded<T>(
            new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            _ => Interlocked.Increment(ref _missed));
    }

    public int Capacity { get; }

    /// <summary>Items waiting now (never more than <see cref="Capacity"/>).</summary>
    public int Count => _items.Reader.Count;

    /// <summary>Items dropped since the last <see cref="TakeMissed"/>, without taking them.</summary>
    public long Missed => Interlocked.Read(ref _missed);

    public ChannelReader<T> Reader => _items.Reader;

    /// <summary>Adds <paramref name="item"/>; never waits (drops the oldest when full).</summary>
    public void Offer(T item) => _items.Writer.TryWrite(item);

    /// <summary>How many items were dropped since the last call.</summary>
    public long TakeMissed() => Interlocked.Exchange(ref _missed, 0);

    public void Complete() => _items.Writer.TryComplete();
}
