namespace Transactor;

/// <summary>What an API key may do. Values are persisted: never renumber them.</summary>
[GenerateSerializer]
public enum ApiKeyRole
{
    /// <summary>Debits, and reads, only accounts it owns; credits any open account.</summary>
    Client = 0,

    /// <summary>Everything, including managing keys.</summary>
    Admin = 1,
}

/// <summary>Whether an API key is accepted. Values are persisted: never renumber them.</summary>
[GenerateSerializer]
public enum ApiKeyState
{
    /// <summary>Accepted.</summary>
    Active = 0,

    /// <summary>Refused for good.</summary>
    Revoked = 1,
}

/// <summary>
/// An API key as stored: never its secret, only a hash to verify it by and the key requests are
/// signed with, both derived one-way from the secret (see docs/security.md).
/// </summary>
/// <param name="KeyId">The public part of the key, also the owner of the accounts it opens.</param>
/// <param name="SecretHash">SHA-256 of the secret, in a domain of its own (see <c>ApiKeySecrets</c> in the API).</param>
/// <param name="SigningKey">The HMAC key of signed requests, derived from the secret in another domain.</param>
/// <param name="RequireSignature">Requests with this key must carry a valid signature.</param>
/// <param name="RatePerSecond">This key's own token refill rate, or null for its role's.</param>
/// <param name="Burst">This key's own bucket size, or null for its role's.</param>
[GenerateSerializer, Immutable, Alias("Transactor.ApiKeyRecord")]
public sealed record ApiKeyRecord(
    [property: Id(0)] string KeyId,
    [property: Id(1)] string Name,
    [property: Id(2)] ApiKeyRole Role,
    [property: Id(3)] ApiKeyState State,
    [property: Id(4)] byte[] SecretHash,
    [property: Id(5)] byte[] SigningKey,
    [property: Id(6)] DateTimeOffset CreatedAt,
    [property: Id(7)] DateTimeOffset? RevokedAt,
    [property: Id(8)] bool RequireSignature,
    [property: Id(9)] int? RatePerSecond,
    [property: Id(10)] int? Burst);

/// <summary>One API key, stored in the ledger's storage under its key id.</summary>
[Alias("Transactor.IApiKeyGrain")]
public interface IApiKeyGrain : IGrainWithStringKey
{
    /// <summary>Stores <paramref name="record"/> if this key id holds nothing yet; returns what it holds afterwards.</summary>
    [Alias("Create"), ResponseTimeout(CallTimeouts.Patient)]
    Task<ApiKeyRecord> Create(ApiKeyRecord record);

    /// <summary>The key, or null when no key has this id.</summary>
    [Alias("Get")]
    Task<ApiKeyRecord?> Get();

    /// <summary>Revokes the key (idempotent); null when no key has this id.</summary>
    [Alias("Revoke"), ResponseTimeout(CallTimeouts.Patient)]
    Task<ApiKeyRecord?> Revoke(DateTimeOffset now);
}

/// <summary>The ids of every API key, for listing them. One grain (key 0); the keys themselves live in <see cref="IApiKeyGrain"/>s.</summary>
[Alias("Transactor.IApiKeyRegistryGrain")]
public interface IApiKeyRegistryGrain : IGrainWithIntegerKey
{
    /// <summary>The most keys a ledger holds.</summary>
    public const int MaxKeys = 10_000;

    /// <summary>Lists <paramref name="keyId"/>; false when the registry is full. Idempotent; returns once durable.</summary>
    [Alias("Add"), ResponseTimeout(CallTimeouts.Patient)]
    Task<bool> Add(string keyId);

    /// <summary>Every key id, in ordinal order.</summary>
    [Alias("List")]
    Task<IReadOnlyList<string>> List();
}

/// <summary>
/// One shard of the nonces of signed requests seen in the last <see cref="Window"/>, so that a request
/// replayed to any API instance is refused. A nonce whose timestamp is at most <see cref="StoreAhead"/>
/// ahead of the shard's clock is kept in memory only; one further ahead is written to the ledger's
/// storage before it is accepted. An activation that follows another refuses every in-memory nonce
/// the one before could have accepted: those signed less than <see cref="RestartGrace"/> after its
/// start (<see cref="NonceOutcome.BeforeShardStart"/>). So a shard whose silo died cannot be made to
/// accept a replay, whatever the timestamp (docs/security.md, "Replays").
/// </summary>
[Alias("Transactor.INonceGrain")]
public interface INonceGrain : IGrainWithIntegerKey
{
    /// <summary>The number of nonce shards.</summary>
    public const int Shards = 16;

    /// <summary>
    /// How long a nonce is remembered: the 5 minutes a timestamp may be behind plus the 5 it may be
    /// ahead, and a minute for the servers' clocks to differ, so that a nonce outlives every timestamp
    /// it can be sent with.
    /// </summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(11);

    /// <summary>How long after a restart a shard refuses requests it cannot judge: those signed less than this after its start.</summary>
    public static readonly TimeSpan RestartGrace = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How far ahead of the shard's clock a timestamp may be and its nonce still be kept in memory
    /// only. Half of <see cref="RestartGrace"/>: the other half is what the clocks of the silo that
    /// accepted a nonce and of the one that hosts the shard next may differ by.
    /// </summary>
    public static readonly TimeSpan StoreAhead = TimeSpan.FromSeconds(5);

    /// <summary>Most nonces one shard remembers; when full it refuses new ones (<see cref="NonceOutcome.Full"/>) rather than forget one still in its window.</summary>
    public const int MaxPerShard = 200_000;

    /// <summary>Most nonces signed more than <see cref="StoreAhead"/> ahead that one shard stores at once (<see cref="NonceOutcome.AheadFull"/> beyond).</summary>
    public const int MaxStoredPerShard = 2_048;

    /// <summary>Most of those one key may have in one shard, so that one key cannot use up the store of the others.</summary>
    public const int MaxStoredPerKey = 256;

    /// <summary>Most nonces one call carries.</summary>
    public const int MaxPerCall = 256;

    /// <summary>
    /// Remembers each nonce (scoped by key id: <c>keyid:nonce</c>) unless it was seen within the window, or could
    /// have been first seen before this activation started; one outcome per use, in order. Returns
    /// once every nonce it accepts is remembered as long as it must be (stored, when signed ahead).
    /// </summary>
    [Alias("TryUseMany")]
    Task<NonceOutcome[]> TryUse(NonceUse[] uses);
}

/// <summary>A signed request's nonce, scoped by its key id, and the request's timestamp.</summary>
/// <param name="EarliestFirstSeen">The timestamp less <see cref="INonceGrain.RestartGrace"/>: what shards of versions before 2026-12-06 read.</param>
/// <param name="SignedAt">The request's <c>Signature-Timestamp</c>.</param>
[GenerateSerializer, Immutable, Alias("Transactor.NonceUse")]
public sealed record NonceUse([property: Id(0)] string Nonce, [property: Id(1)] DateTimeOffset EarliestFirstSeen, [property: Id(2)] DateTimeOffset SignedAt)
{
    /// <summary>The use of <paramref name="nonce"/> by a request signed at <paramref name="signedAt"/>.</summary>
    public static NonceUse Of(string nonce, DateTimeOffset signedAt) => new(nonce, signedAt - INonceGrain.RestartGrace, signedAt);

    /// <summary>The timestamp: <see cref="SignedAt"/>, or derived from <see cref="EarliestFirstSeen"/> when an earlier API left it unset.</summary>
    public DateTimeOffset Timestamp => SignedAt != default ? SignedAt : EarliestFirstSeen + INonceGrain.RestartGrace;
}

/// <summary>The outcome of <see cref="INonceGrain.TryUse"/>.</summary>
[GenerateSerializer]
public enum NonceOutcome
{
    /// <summary>New: remembered now.</summary>
    Fresh = 0,

    /// <summary>Seen within the window: a replay.</summary>
    Replayed = 1,

    /// <summary>The shard is full of nonces still in their window.</summary>
    Full = 2,

    /// <summary>
    /// The request could have been first seen before this shard's activation started (its silo died
    /// or the shard moved), when what the shard knew is lost: refused, not remembered.
    /// </summary>
    BeforeShardStart = 3,

    /// <summary>
    /// Signed more than <see cref="INonceGrain.StoreAhead"/> ahead of the shard's clock while the shard
    /// already stores <see cref="INonceGrain.MaxStoredPerShard"/> such nonces, or its key
    /// <see cref="INonceGrain.MaxStoredPerKey"/>: refused, not remembered.
    /// </summary>
    AheadFull = 4,

    /// <summary>Signed ahead, and the write that would store it failed: refused (the shard restarts).</summary>
    StoreFailed = 5,
}

/// <summary>
/// Who is calling, as the API tells the grains through Orleans' request context, so that the grains
/// check ownership again for money-moving calls. Absent for admin keys and for internal callers
/// (recovery, the batch engine): only a client key's calls are restricted.
/// </summary>
public static class Caller
{
    /// <summary>The request context entry: the key id of a client key.</summary>
    public const string ClientKeyContextKey = "transactor.client-key";

    /// <summary>Marks the calls of this async flow as made for client key <paramref name="keyId"/>.</summary>
    public static void SetClient(string keyId) => Orleans.Runtime.RequestContext.Set(ClientKeyContextKey, keyId);

    /// <summary>The client key these calls are made for, or null when unrestricted.</summary>
    public static string? Client => Orleans.Runtime.RequestContext.Get(ClientKeyContextKey) as string;

    /// <summary>True when the caller may debit (or dispute on) an account owned by <paramref name="owner"/>.</summary>
    public static bool MayDebit(string? owner) => Client is not { } client || string.Equals(client, owner, StringComparison.Ordinal);
}
