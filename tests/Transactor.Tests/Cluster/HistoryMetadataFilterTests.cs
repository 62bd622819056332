using Transactor.Domain;

namespace Transactor.Tests.Cluster;

/// <summary>
/// History filtered by metadata on the cluster: each entry keeps the metadata of the movement that
/// made it (transfers, deposits, withdrawals, holds and their posts and voids, linked transfers), a
/// filtered read lists the entries that carry every pair, page rows included, and looks at no more
/// than <see cref="ClusterFixture.HistoryScanPerRead"/> entries a read, however long the history.
/// </summary>
[Collection(ClusterTestGroup.Name)]
public sealed class HistoryMetadataFilterTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static readonly MetadataMap OrderWeb = Meta(("orderId", "o-1"), ("channel", "web"));
    private static readonly MetadataMap OrderApp = Meta(("orderId", "o-1"), ("channel", "app"));
    private static readonly MetadataMap OtherOrder = Meta(("orderId", "o-2"), ("channel", "web"));

    [Fact]
    public async Task Entries_of_every_kind_of_movement_are_filtered_by_one_and_by_two_pairs_across_page_rows()
    {
        var ledger = new Ledger(fixture.Client);
        var prefix = Ledger.NewId("mf");
        var (a, b, c) = ($"{prefix}-a", $"{prefix}-b", $"{prefix}-c");
        foreach (var id in new[] { a, b, c })
        {
            Assert.Equal(OpenAccountStatus.Opened, (await fixture.Client.GetAccount(id).Open("USD", null)).Status);
        }

        await Committed(ledger.Execute(TransferRequest.Deposit(Ledger.NewId("d"), a, 1_000) with { Metadata = OrderWeb }));
        await Committed(ledger.Execute(new TransferRequest(Ledger.NewId("t"), a, b, 100, "USD", Metadata: OrderApp)));
        await Committed(ledger.Execute(new TransferRequest(Ledger.NewId("t"), a, b, 50, "USD")));
        await Committed(ledger.Execute(TransferRequest.Withdrawal(Ledger.NewId("w"), a, 30) with { Metadata = OtherOrder }));
        var posted = Ledger.NewId("h");
        await Committed(ledger.Execute(TransferRequest.Pending(posted, a, b, 200, "USD") with { Metadata = OrderWeb }));
        await Committed(ledger.Coordinator.EndPendingWithMetadata(posted, TransferPhase.Post, 150, OrderWeb));
        var voidedBare = Ledger.NewId("h");
        await Committed(ledger.Execute(TransferRequest.Pending(voidedBare, a, c, 80, "USD") with { Metadata = OtherOrder }));
        // A void without metadata of its own: its entries carry none, whatever the hold had.
        await Committed(ledger.Coordinator.EndPending(voidedBare, TransferPhase.Void, null));
        var voided = Ledger.NewId("h");
        await Committed(ledger.Execute(TransferRequest.Pending(voided, a, b, 60, "USD") with { Metadata = OrderWeb }));
        await Committed(ledger.Coordinator.EndPendingWithMetadata(voided, TransferPhase.Void, null, OrderApp));
        await Committed(ledger.Execute(TransferRequest.Linked(Ledger.NewId("l"), [new TransferLeg(a, b, 10, "USD"), new TransferLeg(a, c, 5, "USD")], OrderWeb)));
        await Committed(ledger.Execute(TransferRequest.Deposit(Ledger.NewId("d"), a, 5) with { Metadata = OtherOrder }));

        // 12 entries of a: 3 full pages of 4, each moved to a row of its own once its page is full.
        await Ledger.WaitUntil(async () => (await fixture.Client.GetAccount(a).GetHistoryHead())!.Pages == 3, Timeout);
        Assert.Equal(
            [
                (1L, HistoryKind.Deposit, (MetadataMap?)OrderWeb), (2L, HistoryKind.TransferOut, OrderApp), (3L, HistoryKind.TransferOut, (MetadataMap?)null),
                (4L, HistoryKind.Withdrawal, OtherOrder), (5L, HistoryKind.HoldOut, OrderWeb), (6L, HistoryKind.PostOut, OrderWeb),
                (7L, HistoryKind.HoldOut, OtherOrder), (8L, HistoryKind.VoidOut, (MetadataMap?)null), (9L, HistoryKind.HoldOut, OrderWeb),
                (10L, HistoryKind.VoidOut, OrderApp), (11L, HistoryKind.TransferOut, OrderWeb), (12L, HistoryKind.Deposit, OtherOrder),
            ],
            (await fixture.Client.GetAccountHistory().Entries(a, 0, 100))!.Entries.Select(e => (e.Sequence, e.Kind, (MetadataMap?)e.Metadata)));

        Assert.Equal([1L, 2L, 5L, 6L, 9L, 10L, 11L], await Filtered(a, Meta(("orderId", "o-1")), limit: 2));
        Assert.Equal([1L, 5L, 6L, 9L, 11L], await Filtered(a, Meta(("orderId", "o-1"), ("channel", "web")), limit: 3));
        Assert.Equal([2L, 10L], await Filtered(a, Meta(("channel", "app")), limit: 100));
        Assert.Equal([4L, 7L, 12L], await Filtered(a, Meta(("orderId", "o-2")), limit: 1));
        Assert.Empty(await Filtered(a, Meta(("orderId", "o-1"), ("channel", "none")), limit: 100));
        Assert.Empty(await Filtered(a, Meta(("orderid", "o-1")), limit: 100));

        // The other side of each movement carries the same metadata: b's transfer in, holds, post, void and linked leg.
        var ofB = (await fixture.Client.GetAccountHistory().Entries(b, 0, 100))!.Entries;
        Assert.Equal(
            ofB.Where(e => e.Metadata?["orderId"] == "o-1").Select(e => e.Sequence),
            await Filtered(b, Meta(("orderId", "o-1")), limit: 2));
        Assert.Equal(
            [HistoryKind.TransferIn, HistoryKind.HoldIn, HistoryKind.PostIn, HistoryKind.HoldIn, HistoryKind.VoidIn, HistoryKind.TransferIn],
            ofB.Where(e => e.Metadata?["orderId"] == "o-1").Select(e => e.Kind));
        Assert.Equal([HistoryKind.HoldIn, HistoryKind.TransferIn], (await FilteredEntries(c, Meta(("channel", "web")), limit: 5)).Select(e => e.Kind));
    }

    [Fact]
    public async Task A_filter_that_matches_nothing_in_a_long_history_answers_bounded_reads_that_continue_to_the_end()
    {
        var ledger = new Ledger(fixture.Client);
        var id = (await ledger.OpenFunded(Ledger.NewId("mf-long"), 1, 0))[0];
        const int Deposits = 45;
        await Task.WhenAll(Enumerable.Range(0, Deposits).Select(i =>
            Committed(ledger.Execute(TransferRequest.Deposit(Ledger.NewId("d"), id, 1 + i) with { Metadata = Meta(("orderId", $"o-{i}")) }))));
        await Committed(ledger.Execute(TransferRequest.Deposit(Ledger.NewId("d"), id, 7) with { Metadata = Meta(("orderId", "needle")) }));
        const int Count = Deposits + 1;
        await Ledger.WaitUntil(async () => (await fixture.Client.GetAccount(id).GetHistoryHead())!.Pages == Count / ClusterFixture.HistoryPageSize, Timeout);

        var history = fixture.Client.GetAccountHistory();
        foreach (var (filter, expected) in new[] { (Meta(("orderId", "nothing")), Array.Empty<long>()), (Meta(("orderId", "needle")), new long[] { Count }) })
        {
            var reads = new List<HistoryEntries>();
            long after = 0;
            do
            {
                var read = (await history.EntriesMatching(id, after, 100, filter))!;
                Assert.InRange(read.ScannedThrough - after, 1, ClusterFixture.HistoryScanPerRead);
                reads.Add(read);
                after = read.ScannedThrough;
            }
            while (after < Count && reads.Count <= Count);

            // Every read looked at its bound of entries (the last at what was left), none twice, and ended at the last entry.
            Assert.Equal((Count + ClusterFixture.HistoryScanPerRead - 1) / ClusterFixture.HistoryScanPerRead, reads.Count);
            Assert.All(reads, read => Assert.Equal(Count, read.Count));
            Assert.Equal(expected, reads.SelectMany(r => r.Entries).Select(e => e.Sequence));
            Assert.All(reads.SkipLast(1), read => Assert.Empty(read.Entries));
        }

        // Without a filter, the same reads return up to their limit: the bound is for filtered reads only.
        Assert.Equal(Count, (await history.Entries(id, 0, 100))!.Entries.Count);
    }

    [Fact]
    public async Task A_filtered_read_stops_at_its_limit_and_continues_after_the_last_entry_it_kept()
    {
        var ledger = new Ledger(fixture.Client);
        var id = (await ledger.OpenFunded(Ledger.NewId("mf-limit"), 1, 0))[0];
        for (var i = 0; i < 6; i++)
        {
            await Committed(ledger.Execute(TransferRequest.Deposit(Ledger.NewId("d"), id, 1) with { Metadata = i % 2 == 0 ? OrderWeb : OtherOrder }));
        }

        var first = (await fixture.Client.GetAccountHistory().EntriesMatching(id, 0, 2, Meta(("orderId", "o-1"))))!;

        Assert.Equal([1L, 3L], first.Entries.Select(e => e.Sequence));
        Assert.Equal(3L, first.ScannedThrough);
        var rest = (await fixture.Client.GetAccountHistory().EntriesMatching(id, first.ScannedThrough, 2, Meta(("orderId", "o-1"))))!;
        Assert.Equal([5L], rest.Entries.Select(e => e.Sequence));
        Assert.Equal(6L, rest.ScannedThrough);
    }

    private async Task<List<long>> Filtered(string accountId, MetadataMap filter, int limit) =>
        [.. (await FilteredEntries(accountId, filter, limit)).Select(e => e.Sequence)];

    /// <summary>Every entry the filtered reads list, read <paramref name="limit"/> at a time through to the end.</summary>
    private async Task<List<HistoryEntry>> FilteredEntries(string accountId, MetadataMap filter, int limit)
    {
        var history = fixture.Client.GetAccountHistory();
        var found = new List<HistoryEntry>();
        long after = 0;
        for (var reads = 0; ; reads++)
        {
            Assert.True(reads < 100, $"{accountId}: the filtered reads did not reach the end");
            var read = (await history.EntriesMatching(accountId, after, limit, filter))!;
            Assert.True(read.Entries.Count <= limit && read.ScannedThrough - after <= ClusterFixture.HistoryScanPerRead, $"{accountId}: a read after {after} returned {read.Entries.Count} through {read.ScannedThrough}");
            Assert.All(read.Entries, e => Assert.True(e.Matches(filter) && e.Sequence > after && e.Sequence <= read.ScannedThrough));
            found.AddRange(read.Entries);
            if (read.ScannedThrough >= read.Count)
            {
                return found;
            }

            after = read.ScannedThrough;
        }
    }

    private static async Task Committed(Task<TransferResult> movement)
    {
        var result = await movement;
        Assert.True(result.Status == TransferStatus.Committed, $"{result.TransferId}: {result.Status} {result.Reason}");
    }

    private static MetadataMap Meta(params (string Key, string Value)[] pairs) => MetadataMap.Of(pairs.Select(p => KeyValuePair.Create(p.Key, p.Value)))!;
}
