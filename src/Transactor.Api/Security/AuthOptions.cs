namespace Transactor.Api.Security;

/// <summary>Authentication and per-client limits (configuration section <c>Transactor:Auth</c>).</summary>
public sealed class AuthOptions
{
    public const string SectionName = "Transactor:Auth";

    /// <summary>The key id of the bootstrap admin key; it owns the accounts that key opens.</summary>
    public const string BootstrapKeyId = "admin";

    /// <summary>The fewest characters a configured admin key may have.</summary>
    public const int MinAdminKeyLength = 32;

    /// <summary>
    /// A bootstrap admin key (any string of at least <see cref="MinAdminKeyLength"/> characters),
    /// held in configuration only, never stored. The embedded ledger makes one up when none is set and
    /// prints it; an API that is an Orleans client has none unless configured.
    /// </summary>
    public string? AdminKey { get; set; }

    /// <summary>
    /// How long an API instance trusts what it read about a key: a revoke takes effect on every
    /// instance within this time. Unknown keys are remembered as long.
    /// </summary>
    public TimeSpan KeyCacheTime { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The most keys an API instance keeps in its cache.</summary>
    public int MaxCachedKeys { get; set; } = 10_000;

    /// <summary>How far a signed request's timestamp may be behind the server's clock.</summary>
    public TimeSpan SignatureWindow { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How far a signed request's timestamp may be ahead of the server's clock. Requests signed more
    /// than <see cref="INonceGrain.StoreAhead"/> ahead cost a database write each, in their nonce's
    /// shard (docs/security.md, "Replays").
    /// </summary>
    public TimeSpan SignatureMaxAhead { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Keys not in an instance's cache that one remote address may look up per second (and at once):
    /// each lookup reads the key's grain, so a stream of made-up key ids is refused with 429 before
    /// it costs more than this.
    /// </summary>
    public BucketOptions KeyLookups { get; set; } = new() { TokensPerSecond = 20, Burst = 40 };

    /// <summary>
    /// Whether the OpenAPI document (<c>/openapi/v1.json</c>) and Scalar (<c>/scalar</c>) answer without
    /// a key. Unset: yes for the embedded ledger and in the Development environment, else admin keys only.
    /// </summary>
    public bool? PublicDocs { get; set; }

    /// <summary>Token bucket of each client key (unless the key sets its own).</summary>
    public BucketOptions Client { get; set; } = new() { TokensPerSecond = 1_000, Burst = 2_000 };

    /// <summary>Token bucket of each admin key (unless the key sets its own).</summary>
    public BucketOptions Admin { get; set; } = new() { TokensPerSecond = 100_000, Burst = 100_000 };

    /// <summary>Token bucket of each remote address that sends no valid key (only health and docs answer those).</summary>
    public BucketOptions Anonymous { get; set; } = new() { TokensPerSecond = 20, Burst = 40 };

    /// <summary>One bucket all requests with a key share, whatever their key.</summary>
    public BucketOptions Global { get; set; } = new() { TokensPerSecond = 200_000, Burst = 200_000 };
}

/// <summary>A token bucket: <see cref="Burst"/> tokens, refilled at <see cref="TokensPerSecond"/>; a request takes one.</summary>
public sealed class BucketOptions
{
    public int TokensPerSecond { get; set; }

    public int Burst { get; set; }
}
