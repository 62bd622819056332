using Transactor.Api.Http;

namespace Transactor.Api.Security;

/// <summary>Why a request was not authenticated: its stable problem code and the detail shown.</summary>
public sealed record AuthFailure(string Code, string Title, string Detail)
{
    /// <summary>The status of the answer: 401, unless the failure is the server's (503), a limit's (429) or the body's size (413).</summary>
    public int Status { get; init; } = StatusCodes.Status401Unauthorized;

    /// <summary>Seconds to send in <c>Retry-After</c>, when waiting helps.</summary>
    public long? RetryAfterSeconds { get; init; }

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

    public static AuthFailure ReplayCheckRestarted { get; } = new("replay_check_restarting", "The request cannot be checked for replay yet.",
        $"The store of recent nonces restarted (a server stopped) and cannot tell whether a request signed before {INonceGrain.RestartGrace.TotalSeconds:0} s after its start was seen; sign the request again, with the current time, after Retry-After.")
    {
        Status = StatusCodes.Status503ServiceUnavailable,
        RetryAfterSeconds = (long)Math.Ceiling(INonceGrain.RestartGrace.TotalSeconds),
    };

    public static AuthFailure ReplayCheckUnavailable { get; } = new("replay_check_unavailable", "The request cannot be checked for replay now.",
        $"A request signed more than {INonceGrain.StoreAhead.TotalSeconds:0} s ahead of the server's clock is checked against stored nonces, and storing its nonce failed; sign the request again after Retry-After (and synchronise the client's clock).")
    {
        Status = StatusCodes.Status503ServiceUnavailable,
        RetryAfterSeconds = (long)Math.Ceiling(INonceGrain.RestartGrace.TotalSeconds),
    };

    public static AuthFailure TooManyAhead { get; } = new("signature_stale", "Too many requests were signed ahead of the server's clock.",
        $"Requests signed more than {INonceGrain.StoreAhead.TotalSeconds:0} s ahead of the server's clock are each stored, and this key (or all keys) sent too many of them in the last minutes; synchronise the client's clock (NTP) and sign the request again.");

    public static AuthFailure KeyLookupsLimited(TimeSpan retryAfter) => new("rate_limited", "Too many unknown API keys from this address.",
        "This address sent more keys this API instance has not seen recently than it looks up per second; retry after the number of seconds in Retry-After.")
    {
        Status = StatusCodes.Status429TooManyRequests,
        RetryAfterSeconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds)),
    };

    /// <summary>A signed body larger than its endpoint accepts: refused as the endpoint refuses it, 413 (its signature is not checked).</summary>
    public static AuthFailure BodyTooLarge(int maxBytes) => new("payload_too_large", "The body is too large.", $"Bodies are limited to {maxBytes} bytes.")
    {
        Status = StatusCodes.Status413PayloadTooLarge,
    };

    public static AuthFailure SignatureInvalid(string detail) => new("signature_invalid", "The request signature is not valid.", detail);

    public static AuthFailure SignatureStale(TimeSpan window, TimeSpan maxAhead) => new("signature_stale", "The request's timestamp is too far from the server's clock.",
        $"Signature-Timestamp must be at most {window.TotalMinutes:0.#} minutes behind the server's time and {maxAhead.TotalMinutes:0.#} minutes ahead of it; sign the request again now (with a synchronised clock).");

    /// <summary>The problem: a 401 with the challenge RFC 6750 asks for, a 413, or a 429 or 503 with <c>Retry-After</c>.</summary>
    public IResult ToProblem(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (Status == StatusCodes.Status401Unauthorized)
        {
            response.Headers.WWWAuthenticate = "Bearer";
        }

        if (RetryAfterSeconds is { } seconds)
        {
            response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return Problems.Create(Status, Code, Title, Detail);
    }
}
