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

/// <summary>The persisted state of a <see cref="NonceGrain"/>: only when its last activation started, never a nonce.</summary>
[GenerateSerializer, Alias("Transactor.NonceShardState")]
public sealed class NonceShardState
{
    [Id(0)] public DateTimeOffset? StartedAt { get; set; }
}

/// <summary>
/// See <see cref="INonceGrain"/>. Nonces are in memory only: a nonce store written to the database
/// would cost a write per signed request. What is written is one row per activation, when it starts:
/// a shard that finds that an activation came before it (whose silo may have died with nonces it had
/// accepted) refuses every nonce that could have been first seen before it started, instead of
/// accepting a replay (docs/security.md, "Replays"). The row is written before the first nonce is
/// accepted, so an activation that accepted any is always known to the next. Always active: an idle
/// shard that deactivated would refuse the first requests after it comes back for no reason.
/// </summary>
[CollectionAgeLimit(AlwaysActive = true)]
public sealed class NonceGrain(
    [PersistentState("nonces", StorageNames.Ledger)] IPersistentState<NonceShardState> state,
    TimeProvider time) : Grain, INonceGrain
{
    private readonly Dictionary<string, DateTimeOffset> _seen = new(StringComparer.Ordinal);
    private readonly Queue<(string Nonce, DateTimeOffset Expires)> _expiry = new();
    private DateTimeOffset _refuseFirstSeenBefore = DateTimeOffset.MaxValue;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        // The first activation ever has nothing to forget; any later one may have lost nonces.
        var startedBefore = state.RecordExists;
        state.State.StartedAt = now;
        await state.WriteStateAsync(cancellationToken);
        _refuseFirstSeenBefore = startedBefore ? now : DateTimeOffset.MinValue;
    }

    public Task<NonceOutcome[]> TryUse(NonceUse[] uses)
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

        var outcomes = new NonceOutcome[uses.Length];
        for (var i = 0; i < uses.Length; i++)
        {
            outcomes[i] = Use(uses[i], now);
        }

        return Task.FromResult(outcomes);
    }

    private NonceOutcome Use(NonceUse use, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(use);
        if (use.EarliestFirstSeen < _refuseFirstSeenBefore)
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
        _seen.Add(use.Nonce, until);
        _expiry.Enqueue((use.Nonce, until));
        return NonceOutcome.Fresh;
    }
}
