namespace Transactor.Api.Http;

/// <summary>The <c>Idempotency-Key</c> header every money-moving request carries.</summary>
internal static class IdempotencyKey
{
    public const string HeaderName = "Idempotency-Key";

    /// <summary>Set on a response that repeats the outcome of an earlier request with the same key.</summary>
    public const string ReplayedHeaderName = "Idempotent-Replayed";

    public const int MaxLength = 255;

    /// <summary>
    /// The characters a key may not hold, though printable: a movement's URL (<c>Location</c>,
    /// <c>GET /transfers/{id}</c>) carries its key, and a server cannot tell an encoded '/' in a
    /// path from a separator, nor a key's own "%2F" from an encoded '/'. Such a key was accepted
    /// and could never be read back.
    /// </summary>
    public const string ReservedCharacters = "/%";

    /// <summary>True for 1-255 printable ASCII characters other than '/' and '%'.</summary>
    public static bool IsValid(string? value) =>
        !string.IsNullOrEmpty(value) && value.Length <= MaxLength && !value.Any(c => c is < (char)0x20 or > (char)0x7E || ReservedCharacters.Contains(c));

    /// <summary>Reads the key, or returns the problem to answer with.</summary>
    public static bool TryRead(HttpRequest request, out string key, out IResult? problem)
    {
        key = string.Empty;
        problem = null;
        if (!request.Headers.TryGetValue(HeaderName, out var values) || values.Count == 0 || string.IsNullOrEmpty(values[0]))
        {
            problem = Problems.IdempotencyKeyMissing();
            return false;
        }

        var value = values[0]!;
        if (values.Count > 1 || !IsValid(value))
        {
            problem = Problems.IdempotencyKeyInvalid();
            return false;
        }

        key = value;
        return true;
    }
}
