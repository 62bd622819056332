using Orleans.Serialization;
using Orleans.Storage;

namespace Transactor.Grains;

/// <summary>
/// How the ledger's grain state is encoded in a database provider's payload: Orleans' binary
/// serializer, which every state type supports through its <c>[Id]</c>s. Orleans' providers default
/// to Newtonsoft JSON with type names, which made an account row about 740 bytes and a transfer
/// record about 970 and cost the silo a JSON round trip per write; see docs/persistence.md.
/// Rows written as JSON before (they start with <c>{</c>, which a binary payload of a class never
/// does) are still read, and are written back in binary on their next change.
/// </summary>
public sealed class LedgerStorageSerializer(Serializer serializer, OrleansJsonSerializer json) : IGrainStorageSerializer
{
    private readonly OrleansGrainStorageSerializer _binary = new(serializer);
    private readonly JsonGrainStorageSerializer _json = new(json);

    public BinaryData Serialize<T>(T? input) => _binary.Serialize(input);

    public T? Deserialize<T>(BinaryData input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return IsJson(input) ? _json.Deserialize<T>(input) : _binary.Deserialize<T>(input);
    }

    /// <summary>
    /// True for a payload Orleans' JSON serializer wrote. A binary payload opens with a field
    /// header, and a class's header has the tag-delimited wire type (<c>0b001xxxxx</c>), never <c>{</c>.
    /// </summary>
    internal static bool IsJson(BinaryData input) => input.ToMemory().Span is [(byte)'{', ..];
}
