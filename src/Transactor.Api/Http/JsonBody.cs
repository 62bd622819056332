using System.Buffers;
using System.Text.Json;

namespace Transactor.Api.Http;

/// <summary>
/// Reads a small JSON object strictly: JSON content type, bounded size, known fields only, required
/// fields present, and amounts as whole JSON numbers. Every mistake becomes a problem with its own code.
/// </summary>
internal sealed class JsonBody
{
    /// <summary>The largest body accepted.</summary>
    public const int MaxBytes = 16 * 1024;

    private readonly JsonElement _root;

    private JsonBody(JsonElement root) => _root = root;

    /// <summary>The largest body of <c>POST /transfers</c>, which may carry up to 100 legs of a linked transfer.</summary>
    public const int MaxLinkedBytes = 64 * 1024;

    public static async Task<(JsonBody? Body, IResult? Problem)> Read(HttpRequest request, IReadOnlyCollection<string> required, IReadOnlyCollection<string> optional, CancellationToken cancellation, int maxBytes = MaxBytes)
    {
        if (!request.HasJsonContentType())
        {
            return (null, Problems.UnsupportedMediaType());
        }

        if (request.ContentLength > maxBytes)
        {
            return (null, Problems.PayloadTooLarge(maxBytes));
        }

        // Rented, not allocated: every money-moving request passes here. The document is cloned
        // before the buffer goes back.
        var buffer = ArrayPool<byte>.Shared.Rent(maxBytes + 1);
        JsonElement root;
        try
        {
            var length = 0;
            int read;
            while (length <= maxBytes && (read = await request.Body.ReadAsync(buffer.AsMemory(length, maxBytes + 1 - length), cancellation)) > 0)
            {
                length += read;
            }

            if (length > maxBytes)
            {
                return (null, Problems.PayloadTooLarge(maxBytes));
            }

            try
            {
                using var document = JsonDocument.Parse(buffer.AsMemory(0, length), new JsonDocumentOptions { MaxDepth = 8 });
                root = document.RootElement.Clone();
            }
            catch (JsonException ex)
            {
                return (null, Problems.MalformedJson($"The body is not valid JSON: {ex.Message}"));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return Of(root, required, optional);
    }

    /// <summary>Checks an object already parsed (one item of a batch) by the same rules as a body.</summary>
    public static (JsonBody? Body, IResult? Problem) Of(JsonElement root, IReadOnlyCollection<string> required, IReadOnlyCollection<string> optional)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return (null, Problems.MalformedJson("The body must be a JSON object."));
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            if (!required.Contains(property.Name) && !optional.Contains(property.Name))
            {
                var known = string.Join(", ", required.Concat(optional));
                return (null, Problems.InvalidField(property.Name, $"Unknown field '{property.Name}'. Known fields: {known}."));
            }

            if (!seen.Add(property.Name))
            {
                return (null, Problems.InvalidField(property.Name, $"Field '{property.Name}' appears twice."));
            }
        }

        var body = new JsonBody(root);
        return body.Missing(required) is { } missing ? (null, missing) : (body, null);
    }

    /// <summary>The problem for the first of <paramref name="required"/> that is absent or null, or null when all are there.</summary>
    public IResult? Missing(IEnumerable<string> required)
    {
        foreach (var name in required)
        {
            if (!Has(name))
            {
                return Problems.InvalidField(name, $"Field '{name}' is required.");
            }
        }

        return null;
    }

    /// <summary>
    /// The <c>metadata</c> field: a JSON object of up to <see cref="MetadataMap.MaxEntries"/> string
    /// values under keys of <see cref="MetadataMap.MaxKeyLength"/> letters, digits, '-', '_' and '.',
    /// each value at most <see cref="MetadataMap.MaxValueLength"/> characters; null when absent, null
    /// or empty. A mistake is a 400 <c>invalid_metadata</c> naming the field (<c>metadata.key</c>).
    /// </summary>
    public bool TryMetadata(out MetadataMap? metadata, out IResult? problem)
    {
        metadata = null;
        problem = null;
        if (!Has("metadata"))
        {
            return true;
        }

        var element = _root.GetProperty("metadata");
        if (element.ValueKind != JsonValueKind.Object)
        {
            problem = Problems.InvalidMetadata("metadata", "Field 'metadata' must be a JSON object of string values.");
            return false;
        }

        var entries = new List<KeyValuePair<string, string>>();
        foreach (var property in element.EnumerateObject())
        {
            if (property.Value.ValueKind != JsonValueKind.String)
            {
                problem = Problems.InvalidMetadata(FieldOf(property.Name), $"Metadata values are strings; '{property.Name}' is not.");
                return false;
            }

            entries.Add(KeyValuePair.Create(property.Name, property.Value.GetString()!));
            if (entries.Count > MetadataMap.MaxEntries)
            {
                break;
            }
        }

        if (MetadataMap.Check(entries) is { } invalid)
        {
            problem = Problems.InvalidMetadata(invalid.Key is { } key ? FieldOf(key) : "metadata", "Metadata " + invalid.Detail);
            return false;
        }

        metadata = MetadataMap.Of(entries);
        return true;

        static string FieldOf(string key) => "metadata." + (MetadataMap.IsValidKey(key) ? key : "*");
    }

    /// <summary>
    /// The <c>legs</c> field of a linked transfer: a JSON array of 1 to <see cref="LinkedTransfers.MaxLegs"/>
    /// objects, each <c>{"from","to","amount","currency"}</c> checked as the fields of a transfer are.
    /// A mistake in the array is a 400 <c>invalid_legs</c>; one in a leg names it (<c>legs[2].amount</c>, and <c>leg</c>: 2).
    /// </summary>
    public bool TryLegs(out TransferLeg[]? legs, out IResult? problem)
    {
        legs = null;
        problem = null;
        var element = _root.GetProperty("legs");
        if (element.ValueKind != JsonValueKind.Array)
        {
            problem = Problems.InvalidLegs($"Field 'legs' must be a JSON array of 1-{LinkedTransfers.MaxLegs} transfers.");
            return false;
        }

        var count = element.GetArrayLength();
        if (count is 0 or > LinkedTransfers.MaxLegs)
        {
            problem = Problems.InvalidLegs($"A linked transfer has 1-{LinkedTransfers.MaxLegs} legs; this one has {count}.");
            return false;
        }

        var read = new TransferLeg[count];
        var index = 0;
        foreach (var item in element.EnumerateArray())
        {
            (var leg, problem) = ReadLeg(item, index);
            if (leg is null)
            {
                return false;
            }

            read[index++] = leg;
        }

        legs = read;
        return true;
    }

    /// <summary>Leg <paramref name="at"/> of a linked transfer, or the problem with its fields.</summary>
    private static (TransferLeg? Leg, IResult? Problem) ReadLeg(JsonElement item, int at)
    {
        var prefix = $"legs[{at}].";
        if (item.ValueKind != JsonValueKind.Object)
        {
            return (null, Problems.InvalidLegs($"Leg {at} must be a JSON object {{\"from\",\"to\",\"amount\",\"currency\"}}.", at));
        }

        foreach (var property in item.EnumerateObject())
        {
            if (Array.IndexOf(LegFields, property.Name) < 0)
            {
                return (null, Problems.InvalidLegField(prefix + property.Name, at, $"Unknown field '{property.Name}' in leg {at}. Known fields: {string.Join(", ", LegFields)}."));
            }
        }

        var texts = new string?[LegFields.Length];
        for (var f = 0; f < LegFields.Length; f++)
        {
            var name = LegFields[f];
            if (!item.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return (null, Problems.InvalidLegField(prefix + name, at, $"Field '{name}' of leg {at} is required."));
            }

            if (name == "amount")
            {
                continue;
            }

            if (value.ValueKind != JsonValueKind.String)
            {
                return (null, Problems.InvalidLegField(prefix + name, at, $"Field '{name}' of leg {at} must be a string."));
            }

            texts[f] = value.GetString();
        }

        var (from, to, currency) = (texts[0], texts[1], texts[3]);
        foreach (var (field, id) in new[] { ("from", from), ("to", to) })
        {
            if (!Ids.IsValidAccountId(id))
            {
                return (null, Problems.InvalidLegField(prefix + field, at, $"Account ids are 1-{Ids.MaxAccountIdLength} characters of letters, digits, '-', '_' and '.'."));
            }
        }

        var amount = item.GetProperty("amount");
        if (amount.ValueKind != JsonValueKind.Number || !amount.TryGetInt64(out var amountMinor) || !Money.IsValidAmount(amountMinor))
        {
            return (null, Problems.Create(StatusCodes.Status400BadRequest, "invalid_amount", "The amount is not valid.",
                $"The amount of leg {at} must be a whole JSON number of minor units from 1 to {Money.MaxAmountMinor}.",
                new Dictionary<string, object?> { ["field"] = prefix + "amount", ["leg"] = at }));
        }

        if (!Currency.IsValid(currency))
        {
            return (null, Problems.InvalidLegField(prefix + "currency", at, "The currency must be an ISO 4217 code: three upper-case letters such as USD."));
        }

        return (new TransferLeg(from!, to!, amountMinor, currency), null);
    }

    /// <summary>The fields of one leg, all required, in this order.</summary>
    private static readonly string[] LegFields = ["from", "to", "amount", "currency"];

    /// <summary>A string field, or null when absent or null.</summary>
    public bool TryString(string name, out string? value, out IResult? problem)
    {
        value = null;
        problem = null;
        if (!_root.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (element.ValueKind != JsonValueKind.String)
        {
            problem = Problems.InvalidField(name, $"Field '{name}' must be a string.");
            return false;
        }

        value = element.GetString();
        return true;
    }

    /// <summary>A whole-number field, or null when absent or null.</summary>
    public bool TryLong(string name, out long? value, out IResult? problem)
    {
        value = null;
        problem = null;
        if (!_root.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out var number))
        {
            problem = Problems.InvalidField(name, $"Field '{name}' must be a whole number.");
            return false;
        }

        value = number;
        return true;
    }

    /// <summary>True when the body has field <paramref name="name"/> with a value other than null.</summary>
    public bool Has(string name) => _root.TryGetProperty(name, out var element) && element.ValueKind != JsonValueKind.Null;

    /// <summary>A boolean field, false when absent or null.</summary>
    public bool TryBool(string name, out bool value, out IResult? problem)
    {
        value = false;
        problem = null;
        if (!Has(name))
        {
            return true;
        }

        var element = _root.GetProperty(name);
        if (element.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            problem = Problems.InvalidField(name, $"Field '{name}' must be true or false.");
            return false;
        }

        value = element.GetBoolean();
        return true;
    }

    /// <summary>A whole-number field from 1 to <paramref name="max"/>, or null when absent or null.</summary>
    public bool TryCount(string name, int max, out int? value, out IResult? problem)
    {
        value = null;
        problem = null;
        if (!_root.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt32(out var number) || number < 1 || number > max)
        {
            problem = Problems.InvalidField(name, $"Field '{name}' must be a whole number from 1 to {max}.");
            return false;
        }

        value = number;
        return true;
    }

    /// <summary>
    /// A duration field: an ISO 8601 duration string such as <c>PT30S</c> or <c>P1DT2H</c>, from
    /// <paramref name="min"/> to <paramref name="max"/>; null when absent or null. Years and months,
    /// whose length varies, are refused.
    /// </summary>
    public bool TryDuration(string name, TimeSpan min, TimeSpan max, out TimeSpan? value, out IResult? problem)
    {
        value = null;
        if (!TryString(name, out var text, out problem) || text is null)
        {
            return problem is null;
        }

        var datePart = text.Split('T')[0];
        TimeSpan parsed;
        try
        {
            parsed = datePart.Contains('Y', StringComparison.Ordinal) || datePart.Contains('M', StringComparison.Ordinal)
                ? throw new FormatException()
                : System.Xml.XmlConvert.ToTimeSpan(text);
        }
        catch (FormatException)
        {
            problem = Problems.InvalidField(name, $"Field '{name}' must be an ISO 8601 duration in days, hours, minutes and seconds, such as PT30S or P1DT2H.");
            return false;
        }
        catch (OverflowException)
        {
            parsed = TimeSpan.MaxValue;
        }

        if (parsed < min || parsed > max)
        {
            problem = Problems.InvalidField(name, $"Field '{name}' must be from {System.Xml.XmlConvert.ToString(min)} to {System.Xml.XmlConvert.ToString(max)}.");
            return false;
        }

        value = parsed;
        return true;
    }

    /// <summary>The <c>amount</c> field: a whole JSON number of minor units, 1 to <see cref="Money.MaxAmountMinor"/>.</summary>
    public bool TryAmount(out long amountMinor, out IResult? problem)
    {
        amountMinor = 0;
        problem = null;
        var element = _root.GetProperty("amount");
        if (element.ValueKind != JsonValueKind.Number)
        {
            problem = Problems.InvalidAmount("The amount must be a JSON number (an integer count of minor units), not a string.");
            return false;
        }

        if (!element.TryGetInt64(out amountMinor))
        {
            problem = Problems.InvalidAmount("The amount must be a whole number of minor units (no decimal point or exponent) that fits in 64 bits.");
            return false;
        }

        if (!Money.IsValidAmount(amountMinor))
        {
            problem = Problems.InvalidAmount($"The amount must be from 1 to {Money.MaxAmountMinor} minor units.");
            return false;
        }

        return true;
    }
}
