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
    NonceRecorder nonces,
    IOptions<AuthOptions> authOptions,
    TimeProvider time) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string KeyIdClaim = "transactor:key_id";

    private const string FailureItem = "transactor.auth.failure";
    private const int MaxHeaderLength = 512;

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue("Authorization", out var values))
        {
            return Fail(AuthFailure.Missing);
        }

        if (values is not [{ } header] || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length - 7 is < 1 or > MaxHeaderLength)
        {
            return Fail(AuthFailure.Malformed);
        }

        var presented = header[7..].Trim();
        ApiKeyIdentity identity;
        if (!ApiKeySecrets.TryParse(presented, out var keyId))
        {
            if (!keys.IsBootstrap(presented))
            {
                return Fail(AuthFailure.Unknown);
            }

            identity = ApiKeyStore.BootstrapIdentity;
        }
        else
        {
            // A key this instance has not read lately costs a grain call (an activation and a storage
            // read when the id is made up): limited per remote address before it is made.
            if (!keys.TryGetCached(keyId, out var found))
            {
                if (!keys.TryTakeLookup(Context.Connection.RemoteIpAddress, out var retryAfter))
                {
                    return Fail(AuthFailure.KeyLookupsLimited(retryAfter));
                }

                found = await keys.Load(keyId);
            }

            if (found.Identity is not { } stored || !ApiKeySecrets.Verify(ApiKeySecrets.SecretOf(presented), stored.Key.SecretHash))
            {
                return Fail(AuthFailure.Unknown);
            }

            if (stored.Key.State != ApiKeyState.Active)
            {
                return Fail(AuthFailure.Revoked);
            }

            identity = stored;
        }

        var key = identity.Key;
        if (key.RequireSignature || (key.SigningKey.Length > 0 && RequestSignatures.Present(Request)))
        {
            var options = authOptions.Value;
            var (failure, nonce, signedAt) = await RequestSignatures.Verify(Request, key, time.GetUtcNow(), options.SignatureWindow, options.SignatureMaxAhead);
            if (failure is not null)
            {
                return Fail(failure);
            }

            var outcome = await nonces.Use(key.KeyId + ":" + nonce, signedAt);
            if (outcome != NonceOutcome.Fresh)
            {
                return Fail(outcome switch
                {
                    NonceOutcome.Replayed => AuthFailure.SignatureReplayed,
                    NonceOutcome.BeforeShardStart => AuthFailure.ReplayCheckRestarted,
                    NonceOutcome.AheadFull => AuthFailure.TooManyAhead,
                    NonceOutcome.StoreFailed => AuthFailure.ReplayCheckUnavailable,
                    _ => AuthFailure.NonceStoreFull,
                });
            }
        }

        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
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

    [LoggerMessage(Level = LogLevel.Information, Message = "Refused {Method} {Path}: {Code}")]
    private static partial void LogRefused(ILogger logger, string code, string method, PathString path);
}

/// <summary>
/// The identity of an authenticated key: its claims (key id, name, role) for ASP.NET Core's policies,
/// and the key itself. Made once per key each time an instance reads it, and shared by that key's
/// requests (nothing changes an identity once made).
/// </summary>
public sealed class ApiKeyIdentity : ClaimsIdentity
{
    public ApiKeyIdentity(ApiKeyRecord key)
        : base([new(ApiKeyAuthenticationHandler.KeyIdClaim, key.KeyId), new(ClaimTypes.Name, key.Name), new(ClaimTypes.Role, Roles.Of(key.Role))],
            ApiKeyAuthenticationHandler.SchemeName, ClaimTypes.Name, ClaimTypes.Role)
    {
        ArgumentNullException.ThrowIfNull(key);
        Key = key;
        RatePartition = "key:" + key.KeyId;
    }

    public ApiKeyRecord Key { get; }

    /// <summary>The name of this key's token bucket.</summary>
    public string RatePartition { get; }
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
    public static string? KeyId(this ClaimsPrincipal user) =>
        user.Identity is ApiKeyIdentity identity ? identity.Key.KeyId : user.FindFirstValue(ApiKeyAuthenticationHandler.KeyIdClaim);

    public static bool IsAdmin(this ClaimsPrincipal user) =>
        user.Identity is ApiKeyIdentity identity ? identity.Key.Role == ApiKeyRole.Admin : user.IsInRole(Admin);

    /// <summary>The caller's key, or null when unauthenticated.</summary>
    public static ApiKeyRecord? Key(this ClaimsPrincipal user) => (user.Identity as ApiKeyIdentity)?.Key;
}
