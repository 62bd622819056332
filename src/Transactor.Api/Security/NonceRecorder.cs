namespace Transactor.Api.Security;

/// <summary>
/// Records the nonces of signed requests in their <see cref="INonceGrain"/> shards, cluster-wide.
/// Per shard, one call at a time: nonces that arrive while a call is in flight wait and go together
/// in the next one (at most <see cref="INonceGrain.MaxPerCall"/>), as a group commit does. A lone
/// request costs one grain call as before; under load many requests share one. Every nonce is still
/// decided by its one shard, so a request replayed to any API instance is refused.
/// </summary>
public sealed class NonceRecorder(IClusterClient client)
{
    /// <summary>Most nonces waiting for one shard in this instance; beyond it a nonce is refused as <see cref="NonceOutcome.Full"/>.</summary>
    public const int MaxWaitingPerShard = 8 * INonceGrain.MaxPerCall;

    // Made on first use: an API whose requests are never signed never touches the nonce grains.
    private readonly Shard?[] _shards = new Shard?[INonceGrain.Shards];

    /// <summary>Records <paramref name="scopedNonce"/> (key id and nonce) of a request signed at <paramref name="signedAt"/> unless its shard has seen it, or cannot know.</summary>
    public Task<NonceOutcome> Use(string scopedNonce, DateTimeOffset signedAt)
    {
        ArgumentNullException.ThrowIfNull(scopedNonce);
        var index = (int)(StableHash.Fnv1a(scopedNonce) % INonceGrain.Shards);
        var shard = Volatile.Read(ref _shards[index]);
        if (shard is null)
        {
            Interlocked.CompareExchange(ref _shards[index], new Shard(client.GetGrain<INonceGrain>(index)), null);
            shard = _shards[index]!;
        }

        return shard.Use(NonceUse.Of(scopedNonce, signedAt));
    }

    private sealed class Shard(INonceGrain grain)
    {
        private readonly Lock _lock = new();
        private readonly List<(NonceUse Use, TaskCompletionSource<NonceOutcome> Done)> _waiting = [];
        private bool _sending;

        public Task<NonceOutcome> Use(NonceUse use)
        {
            var done = new TaskCompletionSource<NonceOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_lock)
            {
                if (_waiting.Count >= MaxWaitingPerShard)
                {
                    return Task.FromResult(NonceOutcome.Full);
                }

                _waiting.Add((use, done));
                if (_sending)
                {
                    return done.Task;
                }

                _sending = true;
            }

            // The sending loop serves every request that joins it: it must not carry this request's
            // execution context (its Orleans request context, its activity) into their calls.
            using (ExecutionContext.SuppressFlow())
            {
                _ = Task.Run(Send);
            }

            return done.Task;
        }

        private async Task Send()
        {
            while (true)
            {
                (NonceUse Use, TaskCompletionSource<NonceOutcome> Done)[] batch;
                lock (_lock)
                {
                    if (_waiting.Count == 0)
                    {
                        _sending = false;
                        return;
                    }

                    var count = Math.Min(_waiting.Count, INonceGrain.MaxPerCall);
                    batch = [.. _waiting.GetRange(0, count)];
                    _waiting.RemoveRange(0, count);
                }

                try
                {
                    var outcomes = await grain.TryUse([.. batch.Select(b => b.Use)]);
                    for (var i = 0; i < batch.Length; i++)
                    {
                        batch[i].Done.TrySetResult(outcomes[i]);
                    }
                }
                catch (Exception ex)
                {
                    // The shard's silo may be gone: these requests fail (503 through the error
                    // handler), and the next batch tries again.
                    foreach (var (_, done) in batch)
                    {
                        done.TrySetException(ex);
                    }
                }
            }
        }
    }
}
