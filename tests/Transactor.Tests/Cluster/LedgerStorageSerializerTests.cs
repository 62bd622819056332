using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Transactor.Domain;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

public sealed class LedgerStorageSerializerTests
{
    private static readonly Serializer Serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

    public static TheoryData<object> States() => new()
    {
        new AccountState(),
        new AccountState { Currency = "USD", AvailableMinor = 1, Pending = { ["t-1"] = new PendingEntry(EntrySide.Debit, 5) }, DepositNumbers = new() { ["d-1"] = 1 } },
        new TransferState(),
        new TransferState
        {
            Record = new TransferRecord(new TransferRequest("t-1", "a", "b", 5, "USD"), TransferStatus.Committed, RejectionReason.None, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch),
            Completed = true,
        },
        new RecoveryShardState { InFlight = { ["t-1"] = DateTimeOffset.UnixEpoch } },
        new AccountDirectoryState { AccountIds = ["a", "b"] },
    };

    [Theory]
    [MemberData(nameof(States))]
    public void Every_ledger_state_is_stored_in_binary_that_is_never_taken_for_json(object state)
    {
        var serialize = typeof(LedgerStorageSerializer).GetMethod(nameof(LedgerStorageSerializer.Serialize))!.MakeGenericMethod(state.GetType());
        var deserialize = typeof(LedgerStorageSerializer).GetMethod(nameof(LedgerStorageSerializer.Deserialize))!.MakeGenericMethod(state.GetType());
        var serializer = new LedgerStorageSerializer(Serializer, json: null!);

        var payload = (BinaryData)serialize.Invoke(serializer, [state])!;
        var copy = deserialize.Invoke(serializer, [payload])!;

        Assert.False(LedgerStorageSerializer.IsJson(payload), $"{state.GetType().Name} encodes to a payload starting with 0x{payload.ToMemory().Span[0]:x2}");
        Assert.Equal(payload.ToArray(), ((BinaryData)serialize.Invoke(serializer, [copy])!).ToArray());
    }

    [Fact]
    public void Json_is_recognised_by_its_opening_brace()
    {
        Assert.True(LedgerStorageSerializer.IsJson(BinaryData.FromString("""{"$id":"1"}""")));
        Assert.False(LedgerStorageSerializer.IsJson(BinaryData.FromBytes([])));
    }
}
