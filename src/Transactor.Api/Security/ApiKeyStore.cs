using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Transactor.Api.Security;

/// <summary>
/// Finds the key a request presents: the bootstrap admin key from configuration, or a stored key,
/// read from its grain and cached with its identity for <see cref="AuthOptions.KeyCacheTime"/> (a
/// bounded cache; an unknown key id is cached as unknown, so a stream of one bad key costs one grain
/// call per period). A key in the cache costs no grain call; reading one that is not is limited per
/// remote address (<see cref="AuthOptions.KeyLookups"/>), so made-up key ids cannot make an instance
/// activate grains at will.
/// </summary>
public sealed class ApiKeyStore : IDisposable
{
    private readonly IClusterClient _client;
    private readonly AuthOptions _options;
    private readonly MemoryCache _cache;
    private readonly byte[]? _bootstrapHash;
    private readonly PartitionedRateLimiter<IPAddress> _lookups;

    public ApiKeyStore(IClusterClient client, IOptions<AuthOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _client = client;
        _options = options.Value;
        _cache = new(new MemoryCacheOptions { SizeLimit = _options.MaxCachedKeys });
        _bootstrapHash = _options.AdminKey is { } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;
        var lookups = _options.KeyLookups;
        _lookups = PartitionedRateLimiter.Create<IPAddress, IPAddress>(address => RateLimitPartition.GetTokenBucketLimiter(address, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = lookups.Burst,
            TokensPerPeriod = Math.Max(1, lookups.TokensPerSecond / 10),
            ReplenishmentPeriod = TimeSpan.FromSeconds((double)Math.Max(1, lookups.TokensPerSecond / 10) / lookups.TokensPerSecond),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    /// <summary>The identity of the bootstrap admin key: admin, never signed, the role's limits.</summary>
    public static ApiKeyIdentity BootstrapIdentity { get; } = new(new(AuthOptions.BootstrapKeyId, "bootstrap admin key (configuration)", ApiKeyRole.Admin, ApiKeyState.Active,
        [], [], DateTimeOffset.UnixEpoch, null, RequireSignature: false, RatePerSecond: null, Burst: null));

    /// <summary>True when <paramref name="presented"/> is the configured bootstrap admin key (compared in constant time).</summary>
    public bool IsBootstrap(string presented)
    {
        ArgumentNullException.ThrowIfNull(presented);
        if (_bootstrapHash is not { } expected)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[Encoding.UTF8.GetMaxByteCount(presented.Length)];
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(bytes[..Encoding.UTF8.GetBytes(presented, bytes)], hash);
        return CryptographicOperations.FixedTimeEquals(hash, expected);
    }

    /// <summary>What this instance read about key <paramref name="keyId"/> less than <see cref="AuthOptions.KeyCacheTime"/> ago, if anything.</summary>
    public bool TryGetCached(string keyId, [NotNullWhen(true)] out Found? found) => _cache.TryGetValue(keyId, out found) && found is not null;

    /// <summary>Takes one lookup from <paramref name="address"/>'s bucket; false, and how long until the next, when it is empty.</summary>
    public bool TryTakeLookup(IPAddress? address, out TimeSpan retryAfter)
    {
        using var lease = _lookups.AttemptAcquire(address ?? IPAddress.None);
        retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
        return lease.IsAcquired;
    }

    /// <summary>Reads key <paramref name="keyId"/> from its grain and caches what it found (or that there is none).</summary>
    public async Task<Found> Load(string keyId)
    {
        var record = await _client.GetGrain<IApiKeyGrain>(keyId).Get();
        var found = new Found(record is null ? null : new ApiKeyIdentity(record));
        _cache.Set(keyId, found, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _options.KeyCacheTime });
        return found;
    }

    /// <summary>
    /// True while key <paramref name="keyId"/> is active, as this instance knows it (read again at
    /// most every <see cref="AuthOptions.KeyCacheTime"/>): what a long-lived stream asks, so that a
    /// revoke ends it as it refuses new requests. The configured admin key is always active.
    /// </summary>
    public async Task<bool> IsActive(string keyId)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        if (keyId == AuthOptions.BootstrapKeyId)
        {
            return true;
        }

        var found = TryGetCached(keyId, out var cached) ? cached : await Load(keyId);
        return found.Identity?.Key.State == ApiKeyState.Active;
    }

    /// <summary>Forgets what this instance read about <paramref name="keyId"/>: a revoke through this instance takes effect here at once.</summary>
    public void Forget(string keyId) => _cache.Remove(keyId);

    public void Dispose()
    {
        _cache.Dispose();
        _lookups.Dispose();
    }

    /// <summary>What was read about a key id: its identity, or null when no key has it.</summary>
    public sealed record Found(ApiKeyIdentity? Identity);
}
