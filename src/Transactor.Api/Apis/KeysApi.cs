using Transactor.Api.Http;
using Transactor.Api.Security;

namespace Transactor.Api.Apis;

/// <summary>API keys: created, listed and revoked by admin keys (docs/security.md).</summary>
public static class KeysApi
{
    /// <summary>The largest per-key rate or burst an admin may set.</summary>
    public const int MaxTokens = 1_000_000;

    private const int MaxNameLength = 200;

    /// <summary>Keys read at once when listing them: each a grain call, perhaps an activation and a storage read.</summary>
    private const int MaxConcurrentReads = 64;

    private static readonly string[] CreateRequired = ["name"];
    private static readonly string[] CreateOptional = ["role", "require_signature", "rate_per_second", "burst"];

    public static RouteGroupBuilder MapKeysApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/keys").WithTags("Keys").RequireAuthorization(Roles.AdminPolicy);
        group.MapPost("/", Create).WithSummary("Create an API key; its secret is in this answer only")
            .Accepts<CreateKeyBody>("application/json").Produces<CreatedKeyView>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);
        group.MapGet("/", List).WithSummary("List API keys (never their secrets)");
        group.MapGet("/{id}", Get).WithSummary("Read an API key (never its secret)");
        group.MapDelete("/{id}", Revoke).WithSummary("Revoke an API key; every API instance refuses it within Transactor:Auth:KeyCacheTime");
        return group;
    }

    private static async Task<IResult> Create(HttpRequest request, IClusterClient client, TimeProvider time)
    {
        var (body, problem) = await JsonBody.Read(request, CreateRequired, CreateOptional, request.HttpContext.RequestAborted);
        if (body is null)
        {
            return problem!;
        }

        if (!body.TryString("name", out var name, out problem) || !body.TryString("role", out var roleText, out problem)
            || !body.TryBool("require_signature", out var requireSignature, out problem)
            || !body.TryCount("rate_per_second", MaxTokens, out var rate, out problem) || !body.TryCount("burst", MaxTokens, out var burst, out problem))
        {
            return problem!;
        }

        if (name is not { Length: > 0 and <= MaxNameLength })
        {
            return Problems.InvalidField("name", $"The name is 1-{MaxNameLength} characters.");
        }

        var role = ApiKeyRole.Client;
        if (roleText is not null && !Roles.TryParse(roleText, out role))
        {
            return Problems.InvalidField("role", $"The role is '{Roles.Client}' or '{Roles.Admin}'.");
        }

        var keyId = ApiKeySecrets.NewKeyId();
        var secret = ApiKeySecrets.NewSecret();
        var record = new ApiKeyRecord(keyId, name, role, ApiKeyState.Active, ApiKeySecrets.Hash(secret), ApiKeySecrets.SigningKey(secret),
            time.GetUtcNow(), null, requireSignature, rate, burst);
        // Listed first: a key the registry cannot hold is never created, so every key can be listed.
        if (!await client.GetGrain<IApiKeyRegistryGrain>(0).Add(keyId))
        {
            return Problems.Create(StatusCodes.Status409Conflict, "too_many_keys", "The ledger holds as many keys as it may.",
                $"At most {IApiKeyRegistryGrain.MaxKeys:N0} keys; revoked keys count too.");
        }

        var stored = await client.GetGrain<IApiKeyGrain>(keyId).Create(record);
        return TypedResults.Created($"/keys/{keyId}", new CreatedKeyView(ApiKeySecrets.Format(keyId, secret), KeyView.From(stored)));
    }

    private static async Task<IResult> List(IClusterClient client)
    {
        var ids = await client.GetGrain<IApiKeyRegistryGrain>(0).List();
        // Up to IApiKeyRegistryGrain.MaxKeys of them: a bounded number of reads at once, in the registry's order.
        var records = new ApiKeyRecord?[ids.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, ids.Count), new ParallelOptions { MaxDegreeOfParallelism = MaxConcurrentReads }, async (i, _) =>
            records[i] = await client.GetGrain<IApiKeyGrain>(ids[i]).Get());
        return TypedResults.Ok(records.OfType<ApiKeyRecord>().Select(KeyView.From).ToArray());
    }

    private static async Task<IResult> Get(string id, IClusterClient client)
    {
        var record = ApiKeySecrets.IsKeyId(id) ? await client.GetGrain<IApiKeyGrain>(id).Get() : null;
        return record is null ? KeyNotFound(id) : TypedResults.Ok(KeyView.From(record));
    }

    private static async Task<IResult> Revoke(string id, IClusterClient client, ApiKeyStore keys, TimeProvider time)
    {
        var record = ApiKeySecrets.IsKeyId(id) ? await client.GetGrain<IApiKeyGrain>(id).Revoke(time.GetUtcNow()) : null;
        keys.Forget(id);
        return record is null ? KeyNotFound(id) : TypedResults.Ok(KeyView.From(record));
    }

    private static IResult KeyNotFound(string id) =>
        Problems.Create(StatusCodes.Status404NotFound, "key_not_found", "The API key does not exist.", $"No key has id '{id}'.");

    /// <summary>The body of <c>POST /keys</c>.</summary>
    public sealed record CreateKeyBody(string Name, string? Role, bool? RequireSignature, int? RatePerSecond, int? Burst);
}

/// <summary>An API key as the API shows it: never its secret or hashes.</summary>
public sealed record KeyView(string Id, string Name, string Role, string State, bool RequireSignature, int? RatePerSecond, int? Burst, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt)
{
    public static KeyView From(ApiKeyRecord r) =>
        new(r.KeyId, r.Name, Roles.Of(r.Role), r.State == ApiKeyState.Active ? "active" : "revoked", r.RequireSignature, r.RatePerSecond, r.Burst, r.CreatedAt, r.RevokedAt);
}

/// <summary>A key just created: <see cref="Key"/> is the whole key, secret included, shown this once.</summary>
public sealed record CreatedKeyView(string Key, KeyView Details);
