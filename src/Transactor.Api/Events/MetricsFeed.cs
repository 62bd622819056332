namespace Transactor.Api.Events;

/// <summary>
/// Subscribers of <c>/events/metrics</c>: each gets the metrics snapshot every second and every
/// change of a run, through a small bounded buffer (<see cref="SubscriberCapacity"/>; the oldest
/// is dropped when a client falls behind). Items are JSON, made once for all subscribers.
/// </summary>
public sealed class MetricsFeed
{
    /// <summary>Items waiting for one subscriber.</summary>
    public const int SubscriberCapacity = 32;

    /// <summary>Subscribers at once; more are refused with 503.</summary>
    public const int MaxSubscribers = 256;

    private readonly object _gate = new();
    private readonly List<Subscriber> _subscribers = [];
    private StreamItem? _latest;

    /// <summary>Sends <paramref name="item"/> to every subscriber; a <c>metrics</c> item is also kept for those who subscribe later.</summary>
    public void Publish(StreamItem item)
    {
        ArgumentNullException.ThrowIfNull(item);
        lock (_gate)
        {
            if (item.Type == "metrics")
            {
                _latest = item;
            }

            foreach (var subscriber in _subscribers)
            {
                subscriber.Buffer.Offer(item);
            }
        }
    }

    /// <summary>A new subscriber, starting with the latest snapshot; null when too many are subscribed. Dispose it when the client leaves.</summary>
    public Subscriber? Subscribe()
    {
        lock (_gate)
        {
            if (_subscribers.Count >= MaxSubscribers)
            {
                return null;
            }

            var subscriber = new Subscriber(this);
            if (_latest is not null)
            {
                subscriber.Buffer.Offer(_latest);
            }

            _subscribers.Add(subscriber);
            return subscriber;
        }
    }

    private void Remove(Subscriber subscriber)
    {
        lock (_gate)
        {
            _subscribers.Remove(subscriber);
        }
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _subscribers.Count;
            }
        }
    }

    /// <summary>One subscriber of <c>/events/metrics</c>; disposing it (more than once is fine) frees its place.</summary>
    public sealed class Subscriber(MetricsFeed feed) : IDisposable
    {
        private int _disposed;

        public SubscriberBuffer<StreamItem> Buffer { get; } = new(MetricsFeed.SubscriberCapacity);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                feed.Remove(this);
                Buffer.Complete();
            }
        }
    }
}

/// <summary>One item of an event stream: its SSE event type and its JSON.</summary>
public sealed record StreamItem(string Type, string Json);
