using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Transactor.LoadGen;

/// <summary>
/// Signs every request as docs/security.md ("Signed requests") describes, with the signing key
/// derived from the secret of the key <c>txk.&lt;id&gt;.&lt;secret&gt;</c>: a new nonce, the current time.
/// </summary>
public sealed class SigningHandler(string apiKey, HttpMessageHandler inner) : DelegatingHandler(inner)
{
    private readonly byte[] _signingKey = HMACSHA256.HashData(Encoding.UTF8.GetBytes(apiKey[(apiKey.LastIndexOf('.') + 1)..]), "transactor signing key v1"u8);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(cancellationToken);
        var uri = request.RequestUri!.IsAbsoluteUri ? request.RequestUri : new Uri(new Uri("http://x"), request.RequestUri);
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var canonical = string.Join('\n', "TRANSACTOR-HMAC-SHA256", request.Method.Method.ToUpperInvariant(), uri.AbsolutePath,
            uri.Query.TrimStart('?'), timestamp, nonce, Convert.ToHexStringLower(SHA256.HashData(body)));
        // A retry sends the request again: its headers are replaced, not added to.
        request.Headers.Remove("Signature-Timestamp");
        request.Headers.Remove("Signature-Nonce");
        request.Headers.Remove("Signature");
        request.Headers.Add("Signature-Timestamp", timestamp);
        request.Headers.Add("Signature-Nonce", nonce);
        request.Headers.Add("Signature", Convert.ToBase64String(HMACSHA256.HashData(_signingKey, Encoding.UTF8.GetBytes(canonical))));
        return await base.SendAsync(request, cancellationToken);
    }
}
