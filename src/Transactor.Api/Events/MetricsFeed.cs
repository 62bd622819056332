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
    private readonly List<SubscriberBuffer<StreamItem>> _subscribers = [];
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
                subscriber.Offer(item);
            }
        }
    }

    /// <summary>A new subscriber, starting with the latest snapshot; null when too many are subscribed.</summary>
    public SubscriberBuffer<StreamItem>? Subscribe()
    {
        lock (_gate)
        {
            if (_subscribers.Count >= MaxSubscribers)
            {
                return null;
            }

            var subscriber = new SubscriberBuffer<StreamItem>(SubscriberCapacity);
            if (_latest is not null)
            {
                subscriber.Offer(_latest);
            }

            _subscribers.Add(subscriber);
            return subscriber;
        }
    }

    public void Unsubscribe(SubscriberBuffer<StreamItem> subscriber)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        lock (_gate)
        {
            _subscribers.Remove(subscriber);
        }

        subscriber.Complete();
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
}

/// <summary>One item of an event stream: its SSE event type and its JSON.</summary>
public sealed record StreamItem(string Type, string Json);
