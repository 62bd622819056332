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
/// it accepted that were signed more than <see cref="INonceGrain.RestartGrace"/> ahead of its clock.
/// </summary>
[GenerateSerializer, Alias("Transactor.NonceShardState")]
public sealed class NonceShardState
{
    [Id(0)] public DateTimeOffset? StartedAt { get; set; }

    /// <summary>Nonces signed ahead and accepted, each with the time it may be forgotten, oldest first.</summary>
    [Id(1)] public List<StoredNonce> Ahead { get; set; } = [];
}

/// <summary>A nonce a <see cref="NonceGrain"/> stored, and when it may forget it.</summary>
[GenerateSerializer, Immutable, Alias("Transactor.StoredNonce")]
public sealed record StoredNonce([property: Id(0)] string Nonce, [property: Id(1)] DateTimeOffset Expires);

/// <summary>
/// See <see cref="INonceGrain"/>. Most nonces are in memory only: a nonce store written to the
/// database would cost a write per signed request. What is written is one row per activation, when
/// it starts, and a nonce signed more than <see cref="INonceGrain.RestartGrace"/> ahead of this
/// shard's clock before it is accepted (clocks that run ahead are rare, and such requests pay for
/// the write). An activation that finds that one came before it (whose silo may have died with
/// nonces it had accepted in memory) refuses every request that one could have accepted in memory:
/// those signed less than <see cref="INonceGrain.RestartGrace"/> after this one started. Requests
/// signed later than that could only have been accepted if stored, and the stored ones are read
/// back. The start is written before the first nonce is accepted, so an activation that accepted any
/// is always known to the next (docs/security.md, "Replays"). Always active: an idle shard that
/// deactivated would refuse the first requests after it comes back for no reason.
/// </summary>
[CollectionAgeLimit(AlwaysActive = true)]
public sealed class NonceGrain(
    [PersistentState("nonces", StorageNames.Ledger)] IPersistentState<NonceShardState> state,
    TimeProvider time) : Grain, INonceGrain
{
    private readonly Dictionary<string, DateTimeOffset> _seen = new(StringComparer.Ordinal);
    private readonly Queue<(string Nonce, DateTimeOffset Expires)> _expiry = new();
    private DateTimeOffset _refuseSignedBefore = DateTimeOffset.MaxValue;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        // The first activation ever has nothing to forget; any later one may have lost nonces.
        var startedBefore = state.RecordExists;
        state.State.Ahead.RemoveAll(stored => stored.Expires <= now);
        foreach (var stored in state.State.Ahead)
        {
            Remember(stored.Nonce, stored.Expires);
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
            catch
            {
                // Whether the row was written is unknown, and its ETag with it: this activation goes,
                // and the next reads the row back (refusing, as after any restart, what it cannot judge).
                // Nothing it accepted is lost: the requests of this call hear of the failure.
                DeactivateOnIdle();
                throw;
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
        if (signedAt > now + INonceGrain.RestartGrace)
        {
            // Signed further ahead than a later activation would refuse: kept only if stored.
            if (state.State.Ahead.Count >= INonceGrain.MaxStoredPerShard)
            {
                return NonceOutcome.AheadFull;
            }

            state.State.Ahead.Add(new StoredNonce(use.Nonce, until));
        }

        Remember(use.Nonce, until);
        return NonceOutcome.Fresh;
    }

    private void Remember(string nonce, DateTimeOffset until)
    {
        _seen.Add(nonce, until);
        _expiry.Enqueue((nonce, until));
    }
}
