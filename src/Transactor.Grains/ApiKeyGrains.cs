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
/// See <see cref="INonceGrain"/>. In memory only: a nonce store written to the database would cost a
/// write per signed request. The price: when the silo hosting a shard dies, that shard forgets its
/// nonces, and a request signed in the last <see cref="INonceGrain.Window"/> could be replayed once
/// (docs/security.md). Reentrant is not needed: each call is a few dictionary operations.
/// </summary>
public sealed class NonceGrain(TimeProvider time) : Grain, INonceGrain
{
    private readonly Dictionary<string, DateTimeOffset> _seen = new(StringComparer.Ordinal);
    private readonly Queue<(string Nonce, DateTimeOffset Expires)> _expiry = new();

    public Task<NonceOutcome> TryUse(string nonce)
    {
        ArgumentNullException.ThrowIfNull(nonce);
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

        if (_seen.ContainsKey(nonce))
        {
            return Task.FromResult(NonceOutcome.Replayed);
        }

        if (_seen.Count >= INonceGrain.MaxPerShard)
        {
            return Task.FromResult(NonceOutcome.Full);
        }

        var until = now + INonceGrain.Window;
        _seen.Add(nonce, until);
        _expiry.Enqueue((nonce, until));
        return Task.FromResult(NonceOutcome.Fresh);
    }
}
