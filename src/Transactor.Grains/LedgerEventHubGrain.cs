namespace Transactor.Grains;

/// <summary>
/// The list of event receivers, in memory only: receivers renew their subscription every
/// <see cref="LedgerEvents.RenewEvery"/>, so a lost activation is repopulated within that time,
/// and nothing about it needs to be durable. See docs/events.md.
/// </summary>
public sealed class LedgerEventHubGrain(TimeProvider time) : Grain, ILedgerEventHubGrain
{
    private readonly Dictionary<GrainId, (ILedgerEventObserver Receiver, long RenewedAt)> _receivers = [];

    public Task Subscribe(ILedgerEventObserver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        Expire();
        var id = receiver.GetGrainId();
        if (!_receivers.ContainsKey(id) && _receivers.Count >= LedgerEvents.MaxReceivers)
        {
            throw new InvalidOperationException($"The ledger's event hub has {LedgerEvents.MaxReceivers} receivers already.");
        }

        _receivers[id] = (receiver, time.GetTimestamp());
        return Task.CompletedTask;
    }

    public Task Unsubscribe(ILedgerEventObserver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        _receivers.Remove(receiver.GetGrainId());
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<ILedgerEventObserver>> Receivers()
    {
        Expire();
        return Task.FromResult<IReadOnlyList<ILedgerEventObserver>>(_receivers.Values.Select(r => r.Receiver).ToArray());
    }

    private void Expire()
    {
        foreach (var (id, entry) in _receivers)
        {
            if (time.GetElapsedTime(entry.RenewedAt) > LedgerEvents.SubscriptionLifetime)
            {
                _receivers.Remove(id);
            }
        }
    }
}
