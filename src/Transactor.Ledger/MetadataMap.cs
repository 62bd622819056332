namespace Transactor;

/// <summary>
/// A client's string key/values on an account (given at opening) or on a money movement: at most
/// <see cref="MaxEntries"/>, keys of <see cref="MaxKeyLength"/> characters that are letters, digits,
/// '-', '_' and '.' (so that a key can name a query parameter such as <c>metadata.orderId</c>),
/// values of at most <see cref="MaxValueLength"/> characters with no control characters. The ledger
/// stores and returns it; no rule reads it. Equal when it holds the same pairs in any order, so a
/// retry of a movement under its idempotency key is recognised whatever order its JSON had.
/// </summary>
[GenerateSerializer, Immutable, Alias("Transactor.MetadataMap")]
public sealed record MetadataMap
{
    /// <summary>The most key/values one account or movement carries.</summary>
    public const int MaxEntries = 16;

    /// <summary>The longest key, in characters.</summary>
    public const int MaxKeyLength = 64;

    /// <summary>The longest value, in characters.</summary>
    public const int MaxValueLength = 256;

    private MetadataMap(string[] keys, string[] values)
    {
        Keys = keys;
        Values = values;
    }

    /// <summary>The keys in ordinal order.</summary>
    [Id(0)]
    public IReadOnlyList<string> Keys { get; private init; }

    /// <summary>The values, in the order of <see cref="Keys"/>.</summary>
    [Id(1)]
    public IReadOnlyList<string> Values { get; private init; }

    /// <summary>The number of key/values.</summary>
    public int Count => Keys.Count;

    /// <summary>
    /// The metadata holding <paramref name="entries"/>, or null when there are none (no metadata and
    /// empty metadata are one thing). Throws <see cref="ArgumentException"/> when they break a rule
    /// (<see cref="Check"/> says which); callers that face clients check first.
    /// </summary>
    public static MetadataMap? Of(IEnumerable<KeyValuePair<string, string>>? entries)
    {
        if (entries is null)
        {
            return null;
        }

        var pairs = entries.ToArray();
        if (Check(pairs) is { } problem)
        {
            throw new ArgumentException($"Metadata {problem.Detail}", nameof(entries));
        }

        if (pairs.Length == 0)
        {
            return null;
        }

        Array.Sort(pairs, (a, b) => string.CompareOrdinal(a.Key, b.Key));
        return new MetadataMap([.. pairs.Select(p => p.Key)], [.. pairs.Select(p => p.Value)]);
    }

    /// <summary>
    /// Why <paramref name="entries"/> cannot be metadata (the key at fault, or null for the whole,
    /// and what is wrong), or null when they can.
    /// </summary>
    public static MetadataProblem? Check(IReadOnlyCollection<KeyValuePair<string, string>> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count > MaxEntries)
        {
            return new MetadataProblem(null, $"holds {entries.Count} keys; at most {MaxEntries} are allowed.");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in entries)
        {
            if (!IsValidKey(key))
            {
                return new MetadataProblem(key, $"key '{Shorten(key)}' is not 1-{MaxKeyLength} characters of letters, digits, '-', '_' and '.'.");
            }

            if (!seen.Add(key))
            {
                return new MetadataProblem(key, $"key '{key}' appears twice.");
            }

            if (value is null || value.Length > MaxValueLength || value.Any(char.IsControl))
            {
                return new MetadataProblem(key, $"value of '{key}' must be a string of at most {MaxValueLength} characters with no control characters.");
            }
        }

        return null;
    }

    /// <summary>
    /// True when this holds 1 to <see cref="MaxEntries"/> valid key/values in key order: always for
    /// metadata made by <see cref="Of"/>; checked again where one arrives from elsewhere (a grain call).
    /// </summary>
    public bool IsValid
    {
        get
        {
            if (Keys is null || Values is null || Keys.Count != Values.Count || Keys.Count == 0)
            {
                return false;
            }

            for (var i = 1; i < Keys.Count; i++)
            {
                if (string.CompareOrdinal(Keys[i - 1], Keys[i]) >= 0)
                {
                    return false;
                }
            }

            return Check([.. Keys.Zip(Values, KeyValuePair.Create)]) is null;
        }
    }

    /// <summary>True for a key metadata may have.</summary>
    public static bool IsValidKey(string? key) =>
        key is { Length: > 0 and <= MaxKeyLength } && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    /// <summary>The value under <paramref name="key"/>, or null.</summary>
    public string? this[string key]
    {
        get
        {
            for (var i = 0; i < Keys.Count; i++)
            {
                if (string.Equals(Keys[i], key, StringComparison.Ordinal))
                {
                    return Values[i];
                }
            }

            return null;
        }
    }

    /// <summary>True when this holds every key of <paramref name="pairs"/> with the same value (ordinal comparison).</summary>
    public bool ContainsAll(MetadataMap pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        if (pairs.Count > Count)
        {
            return false;
        }

        for (var i = 0; i < pairs.Keys.Count; i++)
        {
            if (!string.Equals(this[pairs.Keys[i]], pairs.Values[i], StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The key/values as a dictionary (a copy), in key order.</summary>
    public IReadOnlyDictionary<string, string> ToDictionary()
    {
        var dictionary = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < Keys.Count; i++)
        {
            dictionary[Keys[i]] = Values[i];
        }

        return dictionary;
    }

    /// <summary>Equal when both hold the same key/values, whatever order they were stored in.</summary>
    public bool Equals(MetadataMap? other)
    {
        if (ReferenceEquals(this, other))
        {
            return true;
        }

        if (other is null || other.Count != Count)
        {
            return false;
        }

        for (var i = 0; i < Keys.Count; i++)
        {
            if (!string.Equals(other[Keys[i]], Values[i], StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    public override int GetHashCode()
    {
        // Order-independent: a sum of the pairs' hashes.
        var hash = Count;
        for (var i = 0; i < Keys.Count; i++)
        {
            hash = unchecked(hash + HashCode.Combine(StringComparer.Ordinal.GetHashCode(Keys[i]), StringComparer.Ordinal.GetHashCode(Values[i])));
        }

        return hash;
    }

    private static string Shorten(string? key) => key is null ? "" : key.Length <= MaxKeyLength ? key : key[..MaxKeyLength] + "…";
}

/// <summary>What is wrong with metadata: the key at fault (null when the whole is), and a sentence that follows "Metadata".</summary>
public sealed record MetadataProblem(string? Key, string Detail);
