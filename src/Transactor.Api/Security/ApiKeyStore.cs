using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Transactor.Api.Security;

/// <summary>
/// Finds the key a request presents: the bootstrap admin key from configuration, or a stored key,
/// read from its grain and cached for <see cref="AuthOptions.KeyCacheTime"/> (a bounded cache; an
/// unknown key id is cached as unknown, so a stream of one bad key costs one grain call per period).
/// </summary>
public sealed class ApiKeyStore(IClusterClient client, IOptions<AuthOptions> options) : IDisposable
{
    private readonly AuthOptions _options = options.Value;
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = options.Value.MaxCachedKeys });
    private readonly byte[]? _bootstrapHash = options.Value.AdminKey is { } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;

    /// <summary>The identity of the bootstrap admin key: admin, never signed, the role's limits.</summary>
    public static ApiKeyRecord Bootstrap { get; } = new(AuthOptions.BootstrapKeyId, "bootstrap admin key (configuration)", ApiKeyRole.Admin, ApiKeyState.Active,
        [], [], DateTimeOffset.UnixEpoch, null, RequireSignature: false, RatePerSecond: null, Burst: null);

    /// <summary>True when <paramref name="presented"/> is the configured bootstrap admin key (compared in constant time).</summary>
    public bool IsBootstrap(string presented) =>
        _bootstrapHash is { } expected && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), expected);

    /// <summary>The stored key with id <paramref name="keyId"/>, or null when none, as read at most <see cref="AuthOptions.KeyCacheTime"/> ago.</summary>
    public async ValueTask<ApiKeyRecord?> Find(string keyId)
    {
        if (_cache.TryGetValue(keyId, out Found? found))
        {
            return found!.Record;
        }

        var record = await client.GetGrain<IApiKeyGrain>(keyId).Get();
        _cache.Set(keyId, new Found(record), new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _options.KeyCacheTime });
        return record;
    }

    /// <summary>Forgets what this instance read about <paramref name="keyId"/>: a revoke through this instance takes effect here at once.</summary>
    public void Forget(string keyId) => _cache.Remove(keyId);

    public void Dispose() => _cache.Dispose();

    private sealed record Found(ApiKeyRecord? Record);
}
