using System.Globalization;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Transactor.Api.Http;

namespace Transactor.Api.Security;

/// <summary>
/// Authenticates <c>Authorization: Bearer &lt;key&gt;</c>: the configured bootstrap admin key, or a
/// stored active key whose secret hashes to the stored hash; then, when the key requires it or the
/// request carries one, its signature and a nonce no API instance has seen. A failure answers 401
/// with the failure's problem code (<see cref="AuthFailure"/>); a refusal by a policy, 403.
/// </summary>
public sealed partial class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    ApiKeyStore keys,
    IClusterClient client,
    IOptions<AuthOptions> authOptions,
    TimeProvider time) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string KeyIdClaim = "transactor:key_id";
    public const string RatePerSecondClaim = "transactor:rate_per_second";
    public const string BurstClaim = "transactor:burst";

    private const string FailureItem = "transactor.auth.failure";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue("Authorization", out var values))
        {
            return Fail(AuthFailure.Missing);
        }

        if (values is not [{ } header] || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length - 7 is < 1 or > 512)
        {
            return Fail(AuthFailure.Malformed);
        }

        var presented = header[7..].Trim();
        ApiKeyRecord key;
        if (keys.IsBootstrap(presented))
        {
            key = ApiKeyStore.Bootstrap;
        }
        else
        {
            if (!ApiKeySecrets.TryParse(presented, out var keyId, out var secret))
            {
                return Fail(AuthFailure.Unknown);
            }

            var found = await keys.Find(keyId);
            if (found is null || !ApiKeySecrets.Verify(secret, found.SecretHash))
            {
                return Fail(AuthFailure.Unknown);
            }

            if (found.State != ApiKeyState.Active)
            {
                return Fail(AuthFailure.Revoked);
            }

            key = found;
        }

        if (key.RequireSignature || (RequestSignatures.Present(Request) && key.SigningKey.Length > 0))
        {
            var (failure, nonce) = await RequestSignatures.Verify(Request, key, time.GetUtcNow(), authOptions.Value.SignatureWindow);
            if (failure is not null)
            {
                return Fail(failure);
            }

            var scoped = key.KeyId + ":" + nonce;
            var shard = (long)(StableHash.Fnv1a(scoped) % INonceGrain.Shards);
            var outcome = await client.GetGrain<INonceGrain>(shard).TryUse(scoped);
            if (outcome != NonceOutcome.Fresh)
            {
                return Fail(outcome == NonceOutcome.Replayed ? AuthFailure.SignatureReplayed : AuthFailure.NonceStoreFull);
            }
        }

        return AuthenticateResult.Success(new AuthenticationTicket(Principal(key), SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var failure = Context.Items[FailureItem] as AuthFailure ?? AuthFailure.Missing;
        await failure.ToProblem(Response).ExecuteAsync(Context);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        await Problems.Create(StatusCodes.Status403Forbidden, "forbidden", "The API key may not do this.", "This request needs an admin key.").ExecuteAsync(Context);
    }

    private AuthenticateResult Fail(AuthFailure failure)
    {
        Context.Items[FailureItem] = failure;
        if (failure != AuthFailure.Missing)
        {
            LogRefused(Logger, failure.Code, Request.Method, Request.Path);
        }

        return failure == AuthFailure.Missing ? AuthenticateResult.NoResult() : AuthenticateResult.Fail(failure.Code);
    }

    private static ClaimsPrincipal Principal(ApiKeyRecord key)
    {
        var claims = new List<Claim>
        {
            new(KeyIdClaim, key.KeyId),
            new(ClaimTypes.Name, key.Name),
            new(ClaimTypes.Role, Roles.Of(key.Role)),
        };
        if (key.RatePerSecond is { } rate)
        {
            claims.Add(new Claim(RatePerSecondClaim, rate.ToString(CultureInfo.InvariantCulture)));
        }

        if (key.Burst is { } burst)
        {
            claims.Add(new Claim(BurstClaim, burst.ToString(CultureInfo.InvariantCulture)));
        }

        return new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName, ClaimTypes.Name, ClaimTypes.Role));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Refused {Method} {Path}: {Code}")]
    private static partial void LogRefused(ILogger logger, string code, string method, PathString path);
}

/// <summary>The role names in claims and policies, and who the caller is.</summary>
public static class Roles
{
    public const string Client = "client";
    public const string Admin = "admin";

    /// <summary>The policy every ledger endpoint requires: an authenticated key.</summary>
    public const string AnyKeyPolicy = "any-key";

    /// <summary>The policy of the key endpoints: an admin key.</summary>
    public const string AdminPolicy = "admin";

    public static string Of(ApiKeyRole role) => role == ApiKeyRole.Admin ? Admin : Client;

    public static bool TryParse(string? text, out ApiKeyRole role)
    {
        role = text == Admin ? ApiKeyRole.Admin : ApiKeyRole.Client;
        return text is Admin or Client;
    }

    /// <summary>The caller's key id; null when unauthenticated.</summary>
    public static string? KeyId(this ClaimsPrincipal user) => user.FindFirstValue(ApiKeyAuthenticationHandler.KeyIdClaim);

    public static bool IsAdmin(this ClaimsPrincipal user) => user.IsInRole(Admin);
}
