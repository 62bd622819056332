using Transactor.Api.Http;

namespace Transactor.Api.Security;

/// <summary>Why a request was not authenticated: its stable problem code and the detail shown.</summary>
public sealed record AuthFailure(string Code, string Title, string Detail)
{
    public static AuthFailure Missing { get; } = new("api_key_missing", "An API key is required.",
        "Send 'Authorization: Bearer <key>' with an API key; admins create keys with POST /keys or 'transactor keys create'.");

    public static AuthFailure Malformed { get; } = new("api_key_malformed", "The Authorization header is not valid.",
        "Send 'Authorization: Bearer <key>' with exactly one key.");

    public static AuthFailure Unknown { get; } = new("api_key_unknown", "The API key is not valid.", "No active key matches the key sent.");

    public static AuthFailure Revoked { get; } = new("api_key_revoked", "The API key has been revoked.", "The key was revoked by an admin; ask for a new one.");

    public static AuthFailure SignatureRequired { get; } = new("signature_required", "This key requires signed requests.",
        $"Send the '{RequestSignatures.SignatureHeader}', '{RequestSignatures.TimestampHeader}' and '{RequestSignatures.NonceHeader}' headers (docs/security.md).");

    public static AuthFailure SignatureReplayed { get; } = new("signature_replayed", "The request was seen before.",
        "The nonce of this signed request was used within the last few minutes; sign every request with a new nonce.");

    public static AuthFailure NonceStoreFull { get; } = new("signature_replayed", "The request cannot be checked for replay.",
        "Too many signed requests in the last few minutes to remember their nonces; retry later.");

    public static AuthFailure SignatureInvalid(string detail) => new("signature_invalid", "The request signature is not valid.", detail);

    public static AuthFailure SignatureStale(TimeSpan window) => new("signature_stale", "The request's timestamp is too far from the server's clock.",
        $"Signature-Timestamp must be within {window.TotalMinutes:0.#} minutes of the server's time; sign the request again now.");

    /// <summary>The 401 problem, with the challenge RFC 6750 asks for.</summary>
    public IResult ToProblem(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.Headers.WWWAuthenticate = "Bearer";
        return Problems.Create(StatusCodes.Status401Unauthorized, Code, Title, Detail);
    }
}
