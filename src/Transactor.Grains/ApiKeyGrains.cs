using Microsoft.Extensions.Logging;

namespace Transactor.Grains;

/// <summary>The persisted state of an <see cref="ApiKeyGrain"/>.</summary>
[GenerateSerializer, Alias("Transactor.ApiKeyState")]
public sealed class ApiKeyGrainState
{
    [Id(0)] public ApiKeyRecord? Key { get; set; }
}

/// <summary>See <see cref="IApiKeyGrain"/>. Writes go to the ledger's storage, so keys live as long as the ledger.</summary>
public sealed class ApiKeyGrain(
    [PersistentState("apikey", StorageNames.Ledger)] IPersistentState<ApiKeyGrainState> state) : Grain, IApiKeyGrain
{
    public async Task<ApiKeyRecord> Create(ApiKeyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.KeyId != this.GetPrimaryKeyString())
        {
            throw new ArgumentException($"Key '{record.KeyId}' stored under id '{this.GetPrimaryKeyString()}'.", nameof(record));
        }

        if (state.State.Key is { } existing)
        {
            return existing;
        }

        state.State.Key = record;
        await state.WriteStateAsync();
        return record;
    }

    public Task<ApiKeyRecord?> Get() => Task.FromResult(state.State.Key);

    public async Task<ApiKeyRecord?> Revoke(DateTimeOffset now)
    {
        if (state.State.Key is not { } key || key.State == ApiKeyState.Revoked)
        {
            return state.State.Key;
        }

        state.State.Key = key with { State = ApiKeyState.Revoked, RevokedAt = now };
        await state.WriteStateAsync();
        return state.State.Key;
    }
}

/// <summary>The persisted state of the <see cref="ApiKeyRegistryGrain"/>.</summary>
[GenerateSerializer, Alias("Transactor.ApiKeyRegistryState")]
public sealed class ApiKeyRegistryState
{
    /// <summary>Key ids in ordinal order.</summary>
    [Id(0)] public List<string> KeyIds { get; set; } = [];
}

/// <summary>See <see cref="IApiKeyRegistryGrain"/>. Keys are created rarely: one write per key, no batching.</summary>
public sealed class ApiKeyRegistryGrain(
    [PersistentState("apikeys", StorageNames.Ledger)] IPersistentState<ApiKeyRegistryState> state) : Grain, IApiKeyRegistryGrain
{
    public async Task<bool> Add(string keyId)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        var ids = state.State.KeyIds;
        var index = ids.BinarySearch(keyId, StringComparer.Ordinal);
        if (index >= 0)
        {
            return true;
        }

        if (ids.Count >= IApiKeyRegistryGrain.MaxKeys)
        {
            return false;
        }

        ids.Insert(~index, keyId);
        await state.WriteStateAsync();
        return true;
    }

    public Task<IReadOnlyList<string>> List() => Task.FromResult<IReadOnlyList<string>>([.. state.State.KeyIds]);
}

/// <summary>
/// The persisted state of a <see cref="NonceGrain"/>: when its last activation started, and the nonces
/// it accepted that were signed more than <see cref="INonceGrain.StoreAhead"/> ahead of its clock.
/// </summary>
[GenerateSerializer, Alias("Transactor.NonceShardState")]
public sealed class NonceShardState
{
    [Id(0)] public DateTimeOffset? StartedAt { get; set; }

    /// <summary>Nonces signed ahead and accepted, each with the time it may be forgotten, in the order accepted.</summary>
    [Id(1)] public List<StoredNonce> Ahead { get; set; } = [];
}

/// <summary>A nonce a <see cref="NonceGrain"/> stored, and when it may forget it.</summary>
[GenerateSerializer, Immutable, Alias("Transactor.StoredNonce")]
public sealed record StoredNonce([property: Id(0)] string Nonce, [property: Id(1)] DateTimeOffset Expires);

/// <summary>
/// See <see cref="INonceGrain"/>. Most nonces are in memory only: a nonce store written to the
/// database would cost a write per signed request. What is written is one row per activation, when
/// it starts, and a nonce signed more than <see cref="INonceGrain.StoreAhead"/> ahead of this shard's
/// clock, before it is accepted (clocks that run ahead are rare, and such requests pay for the write).
/// An activation that finds that one came before it (whose silo may have died with nonces it had
/// accepted in memory) refuses every request that one could have accepted in memory: those signed
/// less than <see cref="INonceGrain.RestartGrace"/> after this one started, which leaves the silos'
/// clocks <see cref="INonceGrain.RestartGrace"/> less <see cref="INonceGrain.StoreAhead"/> to differ
/// by. Requests signed later than that could only have been accepted if stored, and the stored ones
/// are read back. The start is written before the first nonce is accepted, so an activation that
/// accepted any is always known to the next (docs/security.md, "Replays"). This assumes one activation
/// at a time, as Orleans' directory gives outside a partition. Always active: an idle shard that
/// deactivated would refuse the first requests after it comes back for no reason.
/// </summary>
[CollectionAgeLimit(AlwaysActive = true)]
public sealed partial class NonceGrain(
    [PersistentState("nonces", StorageNames.Ledger)] IPersistentState<NonceShardState> state,
    TimeProvider time,
    ILogger<NonceGrain> logger) : Grain, INonceGrain
{
    private readonly Dictionary<string, DateTimeOffset> _seen = new(StringComparer.Ordinal);
    private readonly Queue<(string Nonce, DateTimeOffset Expires)> _expiry = new();

    // Stored nonces per key id, for the per-key bound.
    private readonly Dictionary<string, int> _storedByKey = new(StringComparer.Ordinal);
    private DateTimeOffset _refuseSignedBefore = DateTimeOffset.MaxValue;
    private bool _broken;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        // The first activation ever has nothing to forget; any later one may have lost nonces.
        var startedBefore = state.RecordExists;
        state.State.Ahead.RemoveAll(stored => stored.Expires <= now);
        foreach (var stored in state.State.Ahead)
        {
            Remember(stored.Nonce, stored.Expires);
            CountStored(stored.Nonce, +1);
        }

        state.State.StartedAt = now;
        await state.WriteStateAsync(cancellationToken);
        _refuseSignedBefore = startedBefore ? now + INonceGrain.RestartGrace : DateTimeOffset.MinValue;
    }

    public async Task<NonceOutcome[]> TryUse(NonceUse[] uses)
    {
        ArgumentNullException.ThrowIfNull(uses);
        if (uses.Length > INonceGrain.MaxPerCall)
        {
            throw new ArgumentException($"At most {INonceGrain.MaxPerCall} nonces a call, not {uses.Length}.", nameof(uses));
        }

        var now = time.GetUtcNow();
        // Nonces expire in the order they were seen: the queue's head is the oldest.
        while (_expiry.TryPeek(out var oldest) && oldest.Expires <= now)
        {
            _expiry.Dequeue();
            if (_seen.TryGetValue(oldest.Nonce, out var expires) && expires == oldest.Expires)
            {
                _seen.Remove(oldest.Nonce);
            }
        }

        var stored = state.State.Ahead;
        var expired = 0;
        while (expired < stored.Count && stored[expired].Expires <= now)
        {
            CountStored(stored[expired].Nonce, -1);
            expired++;
        }

        stored.RemoveRange(0, expired);
        var storedBefore = stored.Count;
        var outcomes = new NonceOutcome[uses.Length];
        for (var i = 0; i < uses.Length; i++)
        {
            outcomes[i] = Use(uses[i], now);
        }

        if (stored.Count > storedBefore)
        {
            try
            {
                await state.WriteStateAsync();
            }
            catch (Exception ex)
            {
                // Whether the row was written is unknown, and its ETag with it: the nonces this call
                // would have stored are refused (if the row was written, they stay refused), the ones
                // in memory stand, and this activation goes; the next reads the row back.
                LogStoreFailed(logger, ex);
                _broken = true;
                DeactivateOnIdle();
                for (var i = 0; i < uses.Length; i++)
                {
                    if (outcomes[i] == NonceOutcome.Fresh && MustStore(uses[i].Timestamp, now))
                    {
                        outcomes[i] = NonceOutcome.StoreFailed;
                    }
                }
            }
        }

        return outcomes;
    }

    private NonceOutcome Use(NonceUse use, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(use);
        var signedAt = use.Timestamp;
        if (signedAt < _refuseSignedBefore)
        {
            return NonceOutcome.BeforeShardStart;
        }

        if (_seen.ContainsKey(use.Nonce))
        {
            return NonceOutcome.Replayed;
        }

        if (_seen.Count >= INonceGrain.MaxPerShard)
        {
            return NonceOutcome.Full;
        }

        var until = now + INonceGrain.Window;
        if (MustStore(signedAt, now))
        {
            // A write of this activation failed: what its row holds is unknown, so it stores nothing
            // more, and lets nonces that need no storage through until it is gone.
            if (_broken)
            {
                return NonceOutcome.StoreFailed;
            }

            if (state.State.Ahead.Count >= INonceGrain.MaxStoredPerShard
                || _storedByKey.GetValueOrDefault(KeyOf(use.Nonce)) >= INonceGrain.MaxStoredPerKey)
            {
                return NonceOutcome.AheadFull;
            }

            state.State.Ahead.Add(new StoredNonce(use.Nonce, until));
            CountStored(use.Nonce, +1);
        }

        Remember(use.Nonce, until);
        return NonceOutcome.Fresh;
    }

    /// <summary>Signed further ahead than a later activation would refuse: kept only if stored.</summary>
    private static bool MustStore(DateTimeOffset signedAt, DateTimeOffset now) => signedAt > now + INonceGrain.StoreAhead;

    private void Remember(string nonce, DateTimeOffset until)
    {
        // TryAdd: a stored list read back holds each nonce once, but a row is not trusted to.
        if (_seen.TryAdd(nonce, until))
        {
            _expiry.Enqueue((nonce, until));
        }
    }

    /// <summary>The key id of a scoped nonce (<c>keyid:nonce</c>).</summary>
    private static string KeyOf(string scopedNonce) =>
        scopedNonce.IndexOf(':', StringComparison.Ordinal) is > 0 and var colon ? scopedNonce[..colon] : scopedNonce;

    private void CountStored(string scopedNonce, int change)
    {
        var key = KeyOf(scopedNonce);
        var count = _storedByKey.GetValueOrDefault(key) + change;
        if (count > 0)
        {
            _storedByKey[key] = count;
        }
        else
        {
            _storedByKey.Remove(key);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A nonce shard could not store nonces of requests signed ahead; they are refused, and the shard restarts")]
    private static partial void LogStoreFailed(ILogger logger, Exception exception);
}
