using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Transactor.Domain;
using Transactor.Grains;
using Transactor.Tests.Domain;

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
        new AccountState { Currency = "USD", Metadata = MetadataMap.Of([new("customer", "c-1"), new("tier", "gold")]) },
        new AccountState
        {
            Currency = "USD",
            AvailableMinor = 5,
            HistoryPageSize = 8,
            HistoryCount = 2,
            HistoryStart = new HistoryStart(DateTimeOffset.UnixEpoch, 0, 0, 0, 0),
            HistoryTail = TestCodecs.Frames(
                new HistoryEntry(1, DateTimeOffset.UnixEpoch, HistoryKind.Deposit, "d-1", 5, null, 5, 0, 0, 0, Metadata: MetadataMap.Of([new("orderId", "o-1"), new("note", "")])),
                new HistoryEntry(2, DateTimeOffset.UnixEpoch, HistoryKind.Deposit, "d-2", 0, null, 5, 0, 0, 0)),
        },
        new AccountState
        {
            Currency = "USD",
            AvailableMinor = 5,
            HistoryPageSize = 8,
            HistoryCount = 1,
            HistoryStart = new HistoryStart(DateTimeOffset.UnixEpoch, 0, 0, 0, 0),
            EarlierHistoryTail = [new HistoryEntry(1, DateTimeOffset.UnixEpoch, HistoryKind.Deposit, "d-1", 5, null, 5, 0, 0, 0)],
        },
        new HistoryPage { Encoded = TestCodecs.Frames(new HistoryEntry(1, DateTimeOffset.UnixEpoch, HistoryKind.Deposit, "d-1", 5, null, 5, 0, 0, 0)) },
        new TransferState
        {
            Record = new TransferRecord(Linked, TransferStatus.Rejected, RejectionReason.InsufficientFunds, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, 2, FailedLeg: 1),
            Completed = true,
            Accounts = new[] { new AccountSnapshot("a", "USD", null, 5, 0, 0, false, 3, DateTimeOffset.UnixEpoch, 0, Metadata: MetadataMap.Of([new("k", "v")])) },
        },
        new RecoveryShardState { InFlight = { ["t-1"] = DateTimeOffset.UnixEpoch } },
        Packed(new ShardListing("t-1", DateTimeOffset.UnixEpoch, null)),
        new AccountDirectoryState { AccountIds = ["a", "b"] },
        new RunRegistryState
        {
            Runs =
            {
                new RunEntry
                {
                    View = new RunView("r-1", "a run", 10, 2, "done", false, 10, 9, 1, 0, 5.5, 2, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, new BooksView(true, 2, 2, 0, 2), null, "0a1b2c3d"),
                    Lease = TimeSpan.FromSeconds(10),
                },
            },
        },
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

    /// <summary>
    /// An account's row is rewritten on each of its changes, so it must not grow with the account's
    /// history: a busy account, with its window of disputable deposits full of 36-character keys
    /// (GUIDs), stays within the size docs/persistence.md gives.
    /// </summary>
    [Fact]
    public void A_row_with_every_disputable_deposit_stays_within_64_KiB()
    {
        var book = new AccountBook("acct", new AccountState());
        book.Open("USD", null, DateTimeOffset.UnixEpoch);
        for (var i = 0; i < 3 * AccountBook.DisputableDeposits; i++)
        {
            var id = Guid.NewGuid().ToString();
            book.Prepare(new PrepareRequest(id, EntrySide.Credit, 1_000_000 + i, "USD", Epoch: 1, External: true), out _);
            book.Commit(id, 1);
        }

        var payload = new LedgerStorageSerializer(Serializer, json: null!).Serialize(book.State);

        Assert.Equal(AccountBook.DisputableDeposits, book.State.DepositNumbers!.Count);
        Assert.InRange(payload.ToMemory().Length, 36 * AccountBook.DisputableDeposits, 64 * 1024);
    }

    /// <summary>
    /// History entries keep their movement's metadata, and the account's row carries its newest
    /// entries: with a full page of 8 entries each holding the largest metadata there is (16 keys of
    /// 64 characters, 16 values of 256 three-byte UTF-8 characters, none shared between entries), the
    /// row stays within the size docs/transfers.md gives ("Account history").
    /// </summary>
    [Fact]
    public void A_row_with_a_full_page_of_entries_with_the_largest_metadata_stays_within_128_KiB()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var book = new AccountBook("acct", new AccountState());
        book.EnableHistory(clock, TestCodecs.History);
        book.Open("USD", null, DateTimeOffset.UnixEpoch);
        for (var i = 0; i < AccountBook.DefaultHistoryPageSize; i++)
        {
            var id = Guid.NewGuid().ToString();
            var metadata = MetadataMap.Of(Enumerable.Range(0, MetadataMap.MaxEntries).Select(k =>
                new KeyValuePair<string, string>($"{k:D2}{i}".PadRight(MetadataMap.MaxKeyLength, 'k'), $"{k:D2}{i}".PadRight(MetadataMap.MaxValueLength, '€'))));
            book.Prepare(new PrepareRequest(id, EntrySide.Credit, 1_000 + i, "USD", Epoch: 1, External: true), out _);
            Assert.Equal(CommitOutcome.Applied, book.Commit(id, 1, metadata));
        }

        var payload = new LedgerStorageSerializer(Serializer, json: null!).Serialize(book.State);

        Assert.Equal(AccountBook.DefaultHistoryPageSize, book.HistoryTailCount);
        Assert.NotNull(book.DueHistoryPage());
        var metadataBytes = AccountBook.DefaultHistoryPageSize * MetadataMap.MaxEntries * (MetadataMap.MaxKeyLength + (3 * (MetadataMap.MaxValueLength - 3)));
        Assert.InRange(payload.ToMemory().Length, metadataBytes, 128 * 1024);
    }

    /// <summary>
    /// What versions before the enums carried <c>[GenerateSerializer]</c> stored: the runtime's
    /// fallback codec wrote each enum with its type (two bytes more). Rows in that encoding stay in
    /// databases for good, so they must keep reading as they were written.
    /// </summary>
    [Fact]
    public void States_stored_in_the_earlier_enum_encoding_still_read()
    {
        var record = new TransferRecord(new TransferRequest("t-1", "a", "b", 5, "USD"), TransferStatus.Rejected, RejectionReason.InsufficientFunds, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);

        var row = Serializer.Deserialize<TransferState>(Convert.FromHexString(
            "30012991d4b1315472616e736163746f722e5472616e73666572537461746520e820e84007742d3141036141036201154107555344e009030909030521800080b5f7f57f9f08810000000000000000e021800080b5f7f57f9f08810000000000000000e0e00103c101c101e0"));
        var shard = Serializer.Deserialize<RecoveryShardState>(Convert.FromHexString(
            "300123ccf9b33b5472616e736163746f722e5265636f7665727953686172645374617465203001312cd42e1d537472696e67436f6d706172657200030101e0e02101034107742d3120e820e8c01141036141036201154107555344e009030909030521800080b5f7f57f9f08810000000000000000e021800080b5f7f57f9f08810000000000000000e0e0e0e0"));
        var account = Serializer.Deserialize<AccountState>(Convert.FromHexString(
            "30015af7199b2f5472616e736163746f722e4163636f756e7453746174654007555344c10121800000000000000000810000000000000000e0011d01010101010101010101213001312cd42e1d537472696e67436f6d706172657200030101e0010341037820e8080305010d0103e0e02120001121e8002203010b091503e020e800010101091501e020e800010101091501e020e800010101091501e020e80062090113091503e020e800010101091501e020e800010101091501e020e800010101091501e0e00109e0c1010101e0"));

        Assert.Equal((record, true), (row!.Record, row.Completed));
        Assert.Equal(record, Assert.Single(shard!.Records!).Value);
        Assert.Equal(("USD", 7L), (account!.Currency, account.AvailableMinor));
        Assert.Equal(new PendingEntry(EntrySide.Credit, 3, External: true), Assert.Single(account.Pending).Value);
        Assert.True(account.Deposits!.TryGet(9, out var deposit));
        Assert.Equal(new DepositRecord(300, 9, DepositStatus.Settled), deposit);
    }

    [Fact]
    public void A_shard_list_reads_back_every_listing_of_either_encoding()
    {
        var at = new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
        var decided = new TransferRecord(new TransferRequest("t-2", "a", "b", 5, "USD"), TransferStatus.Committed, RejectionReason.None, at, at.AddSeconds(1));
        var pending = new TransferRecord(new TransferRequest("t-3", null, "b", 7, null), TransferStatus.Pending, RejectionReason.None, at, null);
        ShardListing[] listings = [new("t-1", at, null), new("t-2", at, decided), new("t-3", at.AddMinutes(1), pending)];
        var state = Packed(listings);
        // An earlier version's listing that a shard of this version has not rewritten yet.
        state.InFlight["t-0"] = at;
        state.Records = new() { ["t-0"] = decided with { Request = decided.Request with { TransferId = "t-0" } } };

        var stored = new LedgerStorageSerializer(Serializer, json: null!).Serialize(state);
        var read = new LedgerStorageSerializer(Serializer, json: null!).Deserialize<RecoveryShardState>(stored)!.ReadListings(Serializer);

        Assert.Equal([new ShardListing("t-0", at, state.Records["t-0"]), .. listings], read);
    }

    private static RecoveryShardState Packed(params ShardListing[] listings)
    {
        var bytes = new System.Buffers.ArrayBufferWriter<byte>();
        foreach (var listing in listings)
        {
            RecoveryShardState.Append(Serializer, listing, bytes);
        }

        return new RecoveryShardState { Listings = bytes.WrittenMemory };
    }

    private static readonly TransferRequest Linked = TransferRequest.Linked(
        "t-linked",
        [new TransferLeg("a", "b", 5, "USD"), new TransferLeg("b", "c", 3, null)],
        MetadataMap.Of([new("orderId", "o-1"), new("note", "")]));

    /// <summary>
    /// A linked transfer's request, with its legs and metadata, reads back equal to what was stored:
    /// a retry of its key after a restart is still recognised as the same request, and its failing
    /// leg and every account's balances come back with it.
    /// </summary>
    [Fact]
    public void A_linked_transfer_and_its_metadata_read_back_equal()
    {
        var row = new TransferState
        {
            Record = new TransferRecord(Linked, TransferStatus.Rejected, RejectionReason.InsufficientFunds, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, 2, FailedLeg: 1),
            Completed = true,
            Accounts = new[] { new AccountSnapshot("a", "USD", null, 5, 0, 0, false, 3, DateTimeOffset.UnixEpoch, 0) },
        };
        var serializer = new LedgerStorageSerializer(Serializer, json: null!);

        var copy = serializer.Deserialize<TransferState>(serializer.Serialize(row))!;

        Assert.Equal(row.Record, copy.Record);
        Assert.Equal(Linked, copy.Record!.Request);
        Assert.Equal((2, "o-1", 1), (copy.Record.Request.Legs!.Count, copy.Record.Request.Metadata!["orderId"], copy.Record.FailedLeg));
        Assert.Equal(row.Accounts, copy.Accounts);
        Assert.NotEqual(Linked, Linked with { Legs = new TransferLegs([Linked.Legs!.Items[0]]) });
        Assert.NotEqual(Linked, Linked with { Metadata = MetadataMap.Of([new("orderId", "o-2"), new("note", "")]) });
        Assert.Equal(Linked, Linked with { Metadata = MetadataMap.Of([new("note", ""), new("orderId", "o-1")]) });
    }

    [Fact]
    public void Json_is_recognised_by_its_opening_brace()
    {
        Assert.True(LedgerStorageSerializer.IsJson(BinaryData.FromString("""{"$id":"1"}""")));
        Assert.False(LedgerStorageSerializer.IsJson(BinaryData.FromBytes([])));
    }
}
