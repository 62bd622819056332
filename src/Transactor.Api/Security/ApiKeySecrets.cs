using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;

namespace Transactor.Api.Security;

/// <summary>
/// The shape of an API key and what is derived from its secret. A key is
/// <c>txk.&lt;key id&gt;.&lt;secret&gt;</c>: the key id (<c>k</c> and 16 hex digits, public, the owner
/// of the accounts the key opens) and 32 random bytes in base64url. Only
/// <see cref="Hash(string)"/> and <see cref="SigningKey"/> of the secret are stored.
/// </summary>
/// <remarks>
/// A fast hash (SHA-256) suffices: the secret is 256 random bits, so nobody can search for it
/// however cheap each guess is; a slow hash (bcrypt, Argon2) only protects secrets people choose,
/// which can be guessed, and would cost milliseconds on every request a cache misses. Each
/// derivation has its own domain string, so the stored hash is no signing key and vice versa.
/// </remarks>
public static class ApiKeySecrets
{
    public const string Prefix = "txk.";

    private const int SecretBytes = 32;
    private const int KeyIdHexDigits = 16;
    private const int MinSecretLength = 16;
    private const int MaxSecretLength = 128;
    private static readonly byte[] HashDomain = "transactor api key hash v1\n"u8.ToArray();
    private static readonly byte[] SigningDomain = "transactor signing key v1"u8.ToArray();

    /// <summary>A new key id: 'k' (never a hex digit, so storage keeps it a string) and 16 random hex digits.</summary>
    public static string NewKeyId() => "k" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(KeyIdHexDigits / 2));

    /// <summary>A new secret: 32 random bytes, base64url without padding.</summary>
    public static string NewSecret() => Base64Url(RandomNumberGenerator.GetBytes(SecretBytes));

    public static string Format(string keyId, string secret) => $"{Prefix}{keyId}.{secret}";

    /// <summary>Splits a presented key into its id and secret; false when it does not have the shape of one.</summary>
    public static bool TryParse(string key, [NotNullWhen(true)] out string? keyId, [NotNullWhen(true)] out string? secret)
    {
        secret = TryParse(key, out keyId) ? SecretOf(key).ToString() : null;
        return secret is not null;
    }

    /// <summary>The key id of a presented key; false when it does not have the shape of a key (then see <see cref="SecretOf"/>).</summary>
    public static bool TryParse(string key, [NotNullWhen(true)] out string? keyId)
    {
        ArgumentNullException.ThrowIfNull(key);
        keyId = null;
        if (!key.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = key.AsSpan(Prefix.Length);
        var dot = rest.IndexOf('.');
        if (dot != KeyIdHexDigits + 1 || rest[0] != 'k' || !IsHex(rest[1..dot]) || rest.Length - dot - 1 is < MinSecretLength or > MaxSecretLength)
        {
            return false;
        }

        keyId = rest[..dot].ToString();
        return true;
    }

    /// <summary>The secret of a key that <see cref="TryParse(string, out string?)"/> accepted, not copied.</summary>
    public static ReadOnlySpan<char> SecretOf(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return key.AsSpan(Prefix.Length + KeyIdHexDigits + 2);
    }

    /// <summary>True for a key id as <see cref="NewKeyId"/> makes them.</summary>
    public static bool IsKeyId(string? keyId) => keyId is { Length: KeyIdHexDigits + 1 } && keyId[0] == 'k' && IsHex(keyId.AsSpan(1));

    /// <summary>What is stored to verify a secret by: SHA-256 over a domain string and the secret.</summary>
    public static byte[] Hash(string secret)
    {
        var hash = new byte[SHA256.HashSizeInBytes];
        Hash(secret, hash);
        return hash;
    }

    private static void Hash(ReadOnlySpan<char> secret, Span<byte> destination)
    {
        Span<byte> input = stackalloc byte[HashDomain.Length + Encoding.UTF8.GetMaxByteCount(MaxSecretLength)];
        HashDomain.CopyTo(input);
        var length = HashDomain.Length + Encoding.UTF8.GetBytes(secret, input[HashDomain.Length..]);
        SHA256.HashData(input[..length], destination);
    }

    /// <summary>The HMAC-SHA256 key of signed requests: HMAC-SHA256 keyed with the secret over a domain string. Clients derive it alike.</summary>
    public static byte[] SigningKey(string secret) => HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), SigningDomain);

    /// <summary>Whether <paramref name="secret"/> hashes to <paramref name="storedHash"/>, in time that does not depend on where they differ.</summary>
    public static bool Verify(ReadOnlySpan<char> secret, byte[] storedHash)
    {
        ArgumentNullException.ThrowIfNull(storedHash);
        if (secret.Length > MaxSecretLength)
        {
            return false;
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        Hash(secret, hash);
        return CryptographicOperations.FixedTimeEquals(hash, storedHash);
    }

    public static string Base64Url(ReadOnlySpan<byte> bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool IsHex(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return true;
    }
}
