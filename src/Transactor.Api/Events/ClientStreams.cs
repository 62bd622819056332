using System.Collections.Concurrent;

namespace Transactor.Api.Events;

/// <summary>
/// How many event streams each client key has open on this instance, so that one client cannot take
/// every place of <see cref="TransferEventLog.MaxSubscribers"/> and shut out the others (admin keys are
/// not counted: the dashboard and operators use them).
/// </summary>
public sealed class ClientStreams
{
    /// <summary>The most streams one client key may have open on one API instance.</summary>
    public const int MaxPerKey = 8;

    private readonly ConcurrentDictionary<string, int> _open = new(StringComparer.Ordinal);

    /// <summary>Takes a place for <paramref name="keyId"/>, to be given back by disposing the result; null when the key has <see cref="MaxPerKey"/> open.</summary>
    public IDisposable? TryOpen(string keyId)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        while (true)
        {
            var open = _open.GetValueOrDefault(keyId);
            if (open >= MaxPerKey)
            {
                return null;
            }

            if (open == 0 ? _open.TryAdd(keyId, 1) : _open.TryUpdate(keyId, open + 1, open))
            {
                return new Place(this, keyId);
            }
        }
    }

    /// <summary>Streams open now, over all client keys.</summary>
    public int Count => _open.Values.Sum();

    private void Close(string keyId)
    {
        while (true)
        {
            var open = _open.GetValueOrDefault(keyId);
            if (open <= 1 ? _open.TryRemove(new KeyValuePair<string, int>(keyId, open)) : _open.TryUpdate(keyId, open - 1, open))
            {
                return;
            }
        }
    }

    private sealed class Place(ClientStreams streams, string keyId) : IDisposable
    {
        private int _closed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 0)
            {
                streams.Close(keyId);
            }
        }
    }
}
