namespace Transactor.Api.Http;

/// <summary>The <c>Idempotency-Key</c> header every money-moving request carries.</summary>
internal static class IdempotencyKey
{
    public const string HeaderName = "Idempotency-Key";

    /// <summary>Set on a response that repeats the outcome of an earlier request with the same key.</summary>
    public const string ReplayedHeaderName = "Idempotent-Replayed";

    public const int MaxLength = 255;

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
        if (values.Count > 1 || value.Length > MaxLength || value.Any(c => c is < (char)0x20 or > (char)0x7E))
        {
            problem = Problems.IdempotencyKeyInvalid();
            return false;
        }

        key = value;
        return true;
    }
}
