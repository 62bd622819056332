using FsCheck;
using FsCheck.Fluent;
using Transactor.Grains;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Pending;

/// <summary>
/// Random sequences of transfers, pending transfers, posts (whole, partial, too large), voids,
/// expiries, linked transfers (1-4 legs, an account in several legs, a leg on one account) and retries
/// of each, run one by one against the grains and against a plain sequential model: every outcome
/// (with a linked transfer's failing leg), and every account's available, pending debit and pending
/// credit after every step, must agree, and money is conserved. At the end of each sequence every account's
/// history (read whole, read a few entries at a time through the cursor, and as balances at each
/// entry's instant) must be the model's: one entry per change, in order, with the balances after it
/// (a linked transfer: one entry per account whose legs do not cancel out, by their net), each with
/// the metadata of its movement (a post or void its own, an expiry none); and read filtered by one
/// and by two metadata pairs, a few entries at a time, it must be the model's entries that carry them.
/// The cluster's history pages hold 4 entries, so most of it is read from page rows, and a filtered
/// read looks at 10 entries at most, so a filtered listing continues over several reads.
/// </summary>
[Collection(ClusterTestGroup.Name)]
public sealed class PendingModelProperties(ClusterFixture fixture)
{
    private const int Accounts = 3;
    private const long FundedMinor = 1_000;

    /// <summary>The metadata a movement may carry (none, or one of three maps sharing keys), by index.</summary>
    private static readonly MetadataMap?[] Tags =
    [
        null,
        MetadataMap.Of([new("tag", "a")]),
        MetadataMap.Of([new("tag", "a"), new("n", "1")]),
        MetadataMap.Of([new("tag", "b"), new("n", "1")]),
    ];

    /// <summary>The filters each history is read with: one pair, two pairs, and a pair on the other key.</summary>
    private static readonly MetadataMap[] Filters =
    [
        MetadataMap.Of([new("tag", "a")])!,
        MetadataMap.Of([new("tag", "a"), new("n", "1")])!,
        MetadataMap.Of([new("n", "1")])!,
    ];

    [Fact]
    public void Pending_transfers_agree_with_a_sequential_model()
    {
        // A fixed seed: a failure names its seed and replays exactly.
        var replay = new Replay(new Rnd(20261205, 0x9E3779B97F4A7C15), Microsoft.FSharp.Core.FSharpOption<int>.None);
        var config = Config.QuickThrowOnFailure.WithMaxTest(25).WithEndSize(30).WithReplay(replay);
        var property = Prop.ForAll(Arb.From(Gen.ListOf(OperationGen()).Select(l => l.ToArray())), operations =>
            Task.Run(() => RunBoth(operations)).GetAwaiter().GetResult());
        Check.One(config, property);
    }

    private async Task<bool> RunBoth(Operation[] operations)
    {
        var ledger = new Ledger(fixture.Client);
        var ids = await ledger.OpenFunded(Ledger.NewId("pm"), Accounts, FundedMinor);
        var model = new Model(ids, FundedMinor);
        var pendingIds = new List<string>();
        var holdTags = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var step = 0; step < operations.Length; step++)
        {
            var op = operations[step];
            (TransferStatus Status, RejectionReason Reason) expected;
            int? expectedLeg = null;
            TransferResult actual;
            switch (op)
            {
                case Operation.Move move:
                {
                    var id = $"{ids[0]}-op{step}";
                    var request = (move.Pending
                        ? TransferRequest.Pending(id, ids[move.From], ids[move.To], move.AmountMinor, "USD")
                        : new TransferRequest(id, ids[move.From], ids[move.To], move.AmountMinor, "USD")) with { Metadata = Tags[move.Tag] };
                    if (move.Pending)
                    {
                        pendingIds.Add(id);
                        holdTags[id] = move.Tag;
                    }

                    expected = model.Execute(request);
                    actual = await ledger.Coordinator.Execute(request);
                    break;
                }

                case Operation.End end when pendingIds.Count > 0:
                {
                    var pendingId = pendingIds[end.Index % pendingIds.Count];
                    // One metadata per pending transfer and way of ending it, so that an end asked again is the same request:
                    // a post carries its hold's, a void the next map, an expiry none (its reminder has none to give).
                    var metadata = end.Phase switch
                    {
                        TransferPhase.Post => Tags[holdTags[pendingId]],
                        TransferPhase.Void => Tags[(holdTags[pendingId] + 1) % Tags.Length],
                        _ => null,
                    };
                    expected = model.End(pendingId, end.Phase, end.AmountMinor, metadata);
                    actual = await ledger.Coordinator.EndPendingWithMetadata(pendingId, end.Phase, end.AmountMinor, metadata);
                    break;
                }

                case Operation.Linked linked:
                {
                    var request = TransferRequest.Linked($"{ids[0]}-op{step}", linked.Legs.Select(l => new TransferLeg(ids[l.From], ids[l.To], l.AmountMinor, "USD")), Tags[linked.Tag]);
                    (expected, expectedLeg) = model.ExecuteLinked(request);
                    actual = await ledger.Coordinator.Execute(request);
                    if (linked.Retry)
                    {
                        // The same request under its key again: the first outcome, nothing moved twice.
                        var retry = await ledger.Coordinator.Execute(request);
                        Assert.True(
                            (retry.Status, retry.Reason, retry.FailedLeg) == (actual.Status, actual.Reason, actual.FailedLeg) && (retry.Replayed || actual.Status == TransferStatus.Rejected),
                            $"step {step} {op}: retry answered {retry.Status}/{retry.Reason}/leg {retry.FailedLeg} (replayed {retry.Replayed}), first {actual.Status}/{actual.Reason}/leg {actual.FailedLeg}");
                    }

                    break;
                }

                default:
                    continue;
            }

            Assert.True(
                expected.Status == actual.Status && expected.Reason == actual.Reason && expectedLeg == actual.FailedLeg,
                $"step {step} {op}: model {expected.Status}/{expected.Reason}/leg {expectedLeg}, grains {actual.Status}/{actual.Reason}/leg {actual.FailedLeg}");
            foreach (var (id, snapshot) in ids.Zip(await ledger.Snapshots(ids)))
            {
                var balances = (snapshot.AvailableMinor, snapshot.PendingDebitMinor, snapshot.PendingCreditMinor);
                Assert.True(model.Balances(id) == balances, $"step {step} {op}, account {id}: model {model.Balances(id)}, grains {balances}");
                Assert.True(snapshot is { ReservedMinor: 0, IncomingMinor: 0 }, $"step {step}: account {id} has money in flight");
            }
        }

        // Conserved: what the accounts own (available plus what their pending debits hold) is what was funded.
        var total = (await ledger.Snapshots(ids)).Sum(s => s.AvailableMinor + s.PendingDebitMinor);
        Assert.Equal(Accounts * FundedMinor, total);
        foreach (var id in ids)
        {
            await AssertHistory(id, model.History(id));
        }

        return true;
    }

    private async Task AssertHistory(string id, IReadOnlyList<ModelEntry> expected)
    {
        var history = fixture.Client.GetAccountHistory();
        var whole = (await history.Entries(id, 0, AccountHistoryGrain.MaxEntriesPerRead))!;
        var actual = whole.Entries.Select(e => new ModelEntry(e.Kind, e.AmountMinor, e.AvailableMinor, e.PendingDebitMinor, e.PendingCreditMinor, e.Metadata)).ToArray();
        Assert.True(expected.SequenceEqual(actual), $"account {id}: model history\n  {string.Join("\n  ", expected)}\ngrains\n  {string.Join("\n  ", actual)}");
        Assert.Equal(Enumerable.Range(1, expected.Count).Select(i => (long)i), whole.Entries.Select(e => e.Sequence));
        Assert.Equal(expected.Count, whole.Count);

        // Paged three at a time through the cursor, it is the same history.
        var paged = new List<Transactor.Domain.HistoryEntry>();
        for (long after = 0; ;)
        {
            var page = (await history.Entries(id, after, 3))!;
            paged.AddRange(page.Entries);
            if (page.Entries.Count == 0 || page.Entries[^1].Sequence == page.Count)
            {
                break;
            }

            after = page.Entries[^1].Sequence;
        }

        Assert.Equal(whole.Entries, paged);

        // Filtered, two matches a read at most, each read looking at no more than the cluster's bound: the model's entries that carry every pair.
        foreach (var filter in Filters)
        {
            var matching = expected.Select((e, i) => (Entry: e, Sequence: i + 1L)).Where(x => x.Entry.Metadata is { } m && m.ContainsAll(filter)).Select(x => x.Sequence).ToArray();
            var found = new List<long>();
            for (long after = 0, reads = 0; after < whole.Count; reads++)
            {
                Assert.True(reads <= whole.Count, $"account {id}: filtered reads of {filter.ToDictionary().Count} pairs do not reach the end");
                var read = (await history.EntriesMatching(id, after, 2, filter))!;
                Assert.True(read.ScannedThrough > after && read.ScannedThrough - after <= ClusterFixture.HistoryScanPerRead && read.Entries.Count <= 2, $"account {id}: a filtered read after {after} kept {read.Entries.Count} through {read.ScannedThrough}");
                found.AddRange(read.Entries.Select(e => e.Sequence));
                after = read.ScannedThrough;
            }

            Assert.True(matching.SequenceEqual(found), $"account {id}, filter {string.Join(",", filter.ToDictionary())}: model {string.Join(" ", matching)}, grains {string.Join(" ", found)}");
        }

        // At each entry's instant the balances are those of the last entry at that instant (entries may share one).
        foreach (var entry in whole.Entries)
        {
            var last = whole.Entries.Last(e => e.At <= entry.At);
            var at = (await history.BalanceAt(id, entry.At))!;
            Assert.Equal((BalanceAtStatus.Known, last.Sequence, last.AvailableMinor, last.PendingDebitMinor), (at.Status, at.Sequence, at.AvailableMinor, at.PendingDebitMinor));
        }

        var opened = whole.Entries.Count > 0 ? (await history.BalanceAt(id, whole.Entries[0].At.AddTicks(-1)))! : null;
        Assert.True(opened is null || opened.Status == BalanceAtStatus.BeforeOpening || (opened.Sequence == 0 && opened.AvailableMinor == 0), $"account {id}: before its first entry, {opened}");
    }

    private sealed record ModelEntry(Transactor.Domain.HistoryKind Kind, long AmountMinor, long AvailableMinor, long PendingDebitMinor, long PendingCreditMinor, MetadataMap? Metadata = null);

    private static Gen<Operation> OperationGen()
    {
        var account = Gen.Choose(0, Accounts - 1);
        var amount = Gen.Choose(1, 600).Select(i => (long)i);
        var tag = Gen.Choose(0, Tags.Length - 1);
        var move = from f in account from t in account from m in amount from p in Gen.Elements(true, true, false) from g in tag
                   select (Operation)new Operation.Move(f, t, m, p, g);
        var postAmount = Gen.OneOf(Gen.Constant<long?>(null), Gen.Choose(1, 700).Select(i => (long?)i));
        var end = from i in Gen.Choose(0, 1_000)
                  from phase in Gen.Elements(TransferPhase.Post, TransferPhase.Post, TransferPhase.Void, TransferPhase.Expire)
                  from m in postAmount
                  select (Operation)new Operation.End(i, phase, phase == TransferPhase.Post ? m : null);
        var leg = from f in account from t in account from m in amount select new Leg(f, t, m);
        var linked = from count in Gen.Choose(1, 4)
                     from a in leg
                     from b in leg
                     from c in leg
                     from d in leg
                     from retry in Gen.Elements(false, false, true)
                     from g in tag
                     select (Operation)new Operation.Linked([.. new[] { a, b, c, d }.Take(count)], retry, g);
        return Gen.Frequency((4, move), (5, end), (3, linked));
    }

    private sealed record Leg(int From, int To, long AmountMinor);

    private abstract record Operation
    {
        public sealed record Move(int From, int To, long AmountMinor, bool Pending, int Tag) : Operation;

        public sealed record End(int Index, TransferPhase Phase, long? AmountMinor) : Operation;

        public sealed record Linked(Leg[] Legs, bool Retry, int Tag) : Operation
        {
            public override string ToString() => $"Linked [{string.Join(", ", Legs.Select(l => $"{l.From}->{l.To} {l.AmountMinor}"))}] tag {Tag}{(Retry ? " twice" : "")}";
        }
    }

    /// <summary>Pending transfers as plainly as possible, independently of the grains.</summary>
    private sealed class Model(string[] ids, long fundedMinor)
    {
        private readonly Dictionary<string, long> _available = ids.ToDictionary(id => id, _ => fundedMinor);
        private readonly Dictionary<string, long> _pendingDebit = ids.ToDictionary(id => id, _ => 0L);
        private readonly Dictionary<string, long> _pendingCredit = ids.ToDictionary(id => id, _ => 0L);
        private readonly Dictionary<string, TransferRequest> _held = [];
        private readonly Dictionary<string, (TransferPhase Phase, long AmountMinor)> _ended = [];
        private readonly Dictionary<string, List<ModelEntry>> _history = ids.ToDictionary(id => id, _ => new List<ModelEntry> { new(Transactor.Domain.HistoryKind.Deposit, fundedMinor, fundedMinor, 0, 0) });

        public List<ModelEntry> History(string id) => _history[id];

        private void Record(string id, Transactor.Domain.HistoryKind kind, long amountMinor, MetadataMap? metadata) =>
            _history[id].Add(new ModelEntry(kind, amountMinor, _available[id], _pendingDebit[id], _pendingCredit[id], metadata));

        public (long, long, long) Balances(string id) => (_available[id], _pendingDebit[id], _pendingCredit[id]);

        public (TransferStatus, RejectionReason) Execute(TransferRequest r)
        {
            if (r.DebitAccountId == r.CreditAccountId)
            {
                return (TransferStatus.Rejected, RejectionReason.SameAccount);
            }

            if (_available[r.DebitAccountId!] < r.AmountMinor)
            {
                return (TransferStatus.Rejected, RejectionReason.InsufficientFunds);
            }

            _available[r.DebitAccountId!] -= r.AmountMinor;
            if (r.Phase == TransferPhase.Pending)
            {
                _pendingDebit[r.DebitAccountId!] += r.AmountMinor;
                _pendingCredit[r.CreditAccountId!] += r.AmountMinor;
                _held[r.TransferId] = r;
                Record(r.DebitAccountId!, Transactor.Domain.HistoryKind.HoldOut, r.AmountMinor, r.Metadata);
                Record(r.CreditAccountId!, Transactor.Domain.HistoryKind.HoldIn, r.AmountMinor, r.Metadata);
            }
            else
            {
                _available[r.CreditAccountId!] += r.AmountMinor;
                Record(r.DebitAccountId!, Transactor.Domain.HistoryKind.TransferOut, r.AmountMinor, r.Metadata);
                Record(r.CreditAccountId!, Transactor.Domain.HistoryKind.TransferIn, r.AmountMinor, r.Metadata);
            }

            return (TransferStatus.Committed, RejectionReason.None);
        }

        /// <summary>
        /// A linked transfer as docs/transfers.md states it: a leg naming one account twice fails
        /// first (the first such leg); then each account, in ascending id order, must afford what its
        /// legs net, and the first that cannot fails the transfer at its first debiting leg; else every
        /// account moves by its net, all at once.
        /// </summary>
        public ((TransferStatus, RejectionReason), int?) ExecuteLinked(TransferRequest r)
        {
            var legs = r.Legs!.Items;
            for (var i = 0; i < legs.Count; i++)
            {
                if (legs[i].DebitAccountId == legs[i].CreditAccountId)
                {
                    return ((TransferStatus.Rejected, RejectionReason.SameAccount), i);
                }
            }

            var net = new SortedDictionary<string, long>(StringComparer.Ordinal);
            foreach (var leg in legs)
            {
                net[leg.DebitAccountId] = net.GetValueOrDefault(leg.DebitAccountId) - leg.AmountMinor;
                net[leg.CreditAccountId] = net.GetValueOrDefault(leg.CreditAccountId) + leg.AmountMinor;
            }

            foreach (var (id, minor) in net)
            {
                if (_available[id] + minor < 0)
                {
                    var first = legs.Select((leg, i) => (leg, i)).First(x => x.leg.DebitAccountId == id).i;
                    return ((TransferStatus.Rejected, RejectionReason.InsufficientFunds), first);
                }
            }

            foreach (var (id, minor) in net)
            {
                _available[id] += minor;
                if (minor != 0)
                {
                    Record(id, minor < 0 ? Transactor.Domain.HistoryKind.TransferOut : Transactor.Domain.HistoryKind.TransferIn, Math.Abs(minor), r.Metadata);
                }
            }

            return ((TransferStatus.Committed, RejectionReason.None), null);
        }

        public (TransferStatus, RejectionReason) End(string pendingId, TransferPhase phase, long? amountMinor, MetadataMap? metadata)
        {
            if (!_held.TryGetValue(pendingId, out var held))
            {
                return (TransferStatus.Rejected, RejectionReason.PendingTransferNotFound);
            }

            var endMinor = phase == TransferPhase.Post ? amountMinor ?? held.AmountMinor : held.AmountMinor;
            if (endMinor > held.AmountMinor)
            {
                return (TransferStatus.Rejected, RejectionReason.PostExceedsPendingAmount);
            }

            if (_ended.TryGetValue(pendingId, out var ended))
            {
                // The first end wins; the same one again is answered as the first.
                return ended == (phase, endMinor) ? (TransferStatus.Committed, RejectionReason.None) : (TransferStatus.Rejected, ended.Phase switch
                {
                    TransferPhase.Post => RejectionReason.PendingTransferAlreadyPosted,
                    TransferPhase.Void => RejectionReason.PendingTransferAlreadyVoided,
                    _ => RejectionReason.PendingTransferExpired,
                });
            }

            _ended[pendingId] = (phase, endMinor);
            var postedMinor = phase == TransferPhase.Post ? endMinor : 0;
            _pendingDebit[held.DebitAccountId!] -= held.AmountMinor;
            _pendingCredit[held.CreditAccountId!] -= held.AmountMinor;
            _available[held.DebitAccountId!] += held.AmountMinor - postedMinor;
            _available[held.CreditAccountId!] += postedMinor;
            var (debitKind, creditKind) = phase switch
            {
                TransferPhase.Post => (Transactor.Domain.HistoryKind.PostOut, Transactor.Domain.HistoryKind.PostIn),
                TransferPhase.Void => (Transactor.Domain.HistoryKind.VoidOut, Transactor.Domain.HistoryKind.VoidIn),
                _ => (Transactor.Domain.HistoryKind.ExpireOut, Transactor.Domain.HistoryKind.ExpireIn),
            };
            Record(held.DebitAccountId!, debitKind, endMinor, metadata);
            Record(held.CreditAccountId!, creditKind, endMinor, metadata);
            return (TransferStatus.Committed, RejectionReason.None);
        }
    }
}
