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

    public static async Task<(JsonBody? Body, IResult? Problem)> Read(HttpRequest request, IReadOnlyCollection<string> required, IReadOnlyCollection<string> optional, CancellationToken cancellation)
    {
        if (!request.HasJsonContentType())
        {
            return (null, Problems.UnsupportedMediaType());
        }

        if (request.ContentLength > MaxBytes)
        {
            return (null, Problems.PayloadTooLarge(MaxBytes));
        }

        // Rented, not allocated: every money-moving request passes here. The document is cloned
        // before the buffer goes back.
        var buffer = ArrayPool<byte>.Shared.Rent(MaxBytes + 1);
        JsonElement root;
        try
        {
            var length = 0;
            int read;
            while (length <= MaxBytes && (read = await request.Body.ReadAsync(buffer.AsMemory(length, MaxBytes + 1 - length), cancellation)) > 0)
            {
                length += read;
            }

            if (length > MaxBytes)
            {
                return (null, Problems.PayloadTooLarge(MaxBytes));
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

        foreach (var name in required)
        {
            if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return (null, Problems.InvalidField(name, $"Field '{name}' is required."));
            }
        }

        return (new JsonBody(root), null);
    }

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
