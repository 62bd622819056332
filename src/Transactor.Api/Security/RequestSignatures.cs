using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Transactor.Api.Http;

namespace Transactor.Api.Security;

/// <summary>
/// Signed requests (docs/security.md, "Signed requests"): the client sends <c>Signature-Timestamp</c>
/// (Unix seconds), <c>Signature-Nonce</c> (16-64 characters of letters, digits, '-' and '_', new for
/// every request) and <c>Signature</c> (base64 of HMAC-SHA256 over <see cref="CanonicalString"/>,
/// keyed with <see cref="ApiKeySecrets.SigningKey"/> of the key's secret).
/// </summary>
public static class RequestSignatures
{
    public const string SignatureHeader = "Signature";
    public const string TimestampHeader = "Signature-Timestamp";
    public const string NonceHeader = "Signature-Nonce";
    public const string Algorithm = "TRANSACTOR-HMAC-SHA256";

    private const int MinNonceLength = 16;
    private const int MaxNonceLength = 64;

    /// <summary>
    /// Seven lines joined by '\n' (no newline at the end): the algorithm name, the method in upper
    /// case, the path and the query exactly as sent in the request line (the query without its '?',
    /// empty when there is none), the timestamp, the nonce, and the lower-case hex SHA-256 of the body
    /// (of zero bytes when there is none).
    /// </summary>
    public static string CanonicalString(string method, string path, string query, string timestamp, string nonce, ReadOnlySpan<byte> bodySha256) =>
        string.Join('\n', Algorithm, method.ToUpperInvariant(), path, query, timestamp, nonce, Convert.ToHexStringLower(bodySha256));

    /// <summary>The signature of <paramref name="canonical"/> under <paramref name="signingKey"/>, base64.</summary>
    public static string Sign(byte[] signingKey, string canonical) =>
        Convert.ToBase64String(HMACSHA256.HashData(signingKey, Encoding.UTF8.GetBytes(canonical)));

    /// <summary>True when any of the signature headers is present: a signature sent is always checked.</summary>
    public static bool Present(HttpRequest request) =>
        request.Headers.ContainsKey(SignatureHeader) || request.Headers.ContainsKey(TimestampHeader) || request.Headers.ContainsKey(NonceHeader);

    /// <summary>
    /// Checks the request's signature, except the nonce (checked once the signature holds, so that
    /// nobody can use up a client's nonces): the failure, or null, the nonce and the signed time.
    /// A timestamp may be <paramref name="window"/> behind the server's clock and <paramref name="maxAhead"/> ahead of it.
    /// </summary>
    public static async Task<(AuthFailure? Failure, string? Nonce, DateTimeOffset SignedAt)> Verify(
        HttpRequest request, ApiKeyRecord key, DateTimeOffset now, TimeSpan window, TimeSpan maxAhead)
    {
        if (request.Headers[SignatureHeader] is not [{ Length: > 0 } signature]
            || request.Headers[TimestampHeader] is not [{ Length: > 0 } timestamp]
            || request.Headers[NonceHeader] is not [{ Length: > 0 } nonce])
        {
            return (AuthFailure.SignatureRequired, null, default);
        }

        if (!long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds > DateTimeOffset.MaxValue.ToUnixTimeSeconds())
        {
            return (AuthFailure.SignatureInvalid("Signature-Timestamp must be a whole number of seconds since 1970-01-01 UTC."), null, default);
        }

        if (nonce.Length is < MinNonceLength or > MaxNonceLength || !IsNonce(nonce))
        {
            return (AuthFailure.SignatureInvalid($"Signature-Nonce must be {MinNonceLength}-{MaxNonceLength} characters of letters, digits, '-' and '_'."), null, default);
        }

        var signedAt = DateTimeOffset.FromUnixTimeSeconds(seconds);
        if (now - signedAt > window || signedAt - now > maxAhead)
        {
            return (AuthFailure.SignatureStale(window, maxAhead), null, default);
        }

        // The endpoint's own limit: a signed request may carry any body the endpoint takes unsigned,
        // and a larger one is refused as the endpoint would refuse it (413), not as a bad signature.
        var maxBytes = BodyLimit.Of(request.HttpContext);
        var bodyHash = await HashBody(request, maxBytes);
        if (bodyHash is null)
        {
            return (AuthFailure.BodyTooLarge(maxBytes), null, default);
        }

        var (path, query) = Target(request);
        Span<byte> expected = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(key.SigningKey, Encoding.UTF8.GetBytes(CanonicalString(request.Method, path, query, timestamp, nonce, bodyHash)), expected);
        Span<byte> presented = stackalloc byte[HMACSHA256.HashSizeInBytes + 3];
        if (!Convert.TryFromBase64String(signature, presented, out var written) || written != expected.Length
            || !CryptographicOperations.FixedTimeEquals(presented[..written], expected))
        {
            return (AuthFailure.SignatureInvalid("The signature does not match the request."), null, default);
        }

        return (null, nonce, signedAt);
    }

    private static bool IsNonce(string nonce)
    {
        foreach (var c in nonce)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not '-' and not '_')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The path and query as the request line carried them (not decoded).</summary>
    private static (string Path, string Query) Target(HttpRequest request)
    {
        var raw = request.HttpContext.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(raw) || raw[0] != '/')
        {
            raw = request.PathBase.ToUriComponent() + request.Path.ToUriComponent() + request.QueryString.ToUriComponent();
        }

        var question = raw.IndexOf('?', StringComparison.Ordinal);
        return question < 0 ? (raw, string.Empty) : (raw[..question], raw[(question + 1)..]);
    }

    /// <summary>
    /// SHA-256 of the body; null when it is larger than <paramref name="maxBytes"/>, the endpoint's
    /// limit (<see cref="BodyLimit"/>). The body is read into memory (at most that) and the request
    /// reads it from there again.
    /// </summary>
    private static async Task<byte[]?> HashBody(HttpRequest request, int maxBytes)
    {
        if (request.ContentLength > maxBytes)
        {
            return null;
        }

        var body = new MemoryStream(request.ContentLength is { } length ? (int)length : 256);
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(buffer, request.HttpContext.RequestAborted)) > 0)
            {
                if (body.Length + read > maxBytes)
                {
                    return null;
                }

                body.Write(buffer, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        body.Position = 0;
        request.Body = body;
        return SHA256.HashData(body.GetBuffer().AsSpan(0, (int)body.Length));
    }
}
