using FsCheck;
using FsCheck.Fluent;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Pending;

/// <summary>
/// Random sequences of transfers, pending transfers, posts (whole, partial, too large), voids,
/// expiries, linked transfers (1-4 legs, an account in several legs, a leg on one account) and retries
/// of each, run one by one against the grains and against a plain sequential model: every outcome
/// (with a linked transfer's failing leg), and every account's available, pending debit and pending
/// credit after every step, must agree, and money is conserved.
/// </summary>
[Collection(ClusterTestGroup.Name)]
public sealed class PendingModelProperties(ClusterFixture fixture)
{
    private const int Accounts = 3;
    private const long FundedMinor = 1_000;

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
                    var request = move.Pending
                        ? TransferRequest.Pending(id, ids[move.From], ids[move.To], move.AmountMinor, "USD")
                        : new TransferRequest(id, ids[move.From], ids[move.To], move.AmountMinor, "USD");
                    if (move.Pending)
                    {
                        pendingIds.Add(id);
                    }

                    expected = model.Execute(request);
                    actual = await ledger.Coordinator.Execute(request);
                    break;
                }

                case Operation.End end when pendingIds.Count > 0:
                {
                    var pendingId = pendingIds[end.Index % pendingIds.Count];
                    expected = model.End(pendingId, end.Phase, end.AmountMinor);
                    actual = await ledger.Coordinator.EndPending(pendingId, end.Phase, end.AmountMinor);
                    break;
                }

                case Operation.Linked linked:
                {
                    var request = TransferRequest.Linked($"{ids[0]}-op{step}", linked.Legs.Select(l => new TransferLeg(ids[l.From], ids[l.To], l.AmountMinor, "USD")));
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
        return true;
    }

    private static Gen<Operation> OperationGen()
    {
        var account = Gen.Choose(0, Accounts - 1);
        var amount = Gen.Choose(1, 600).Select(i => (long)i);
        var move = from f in account from t in account from m in amount from p in Gen.Elements(true, true, false)
                   select (Operation)new Operation.Move(f, t, m, p);
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
                     select (Operation)new Operation.Linked([.. new[] { a, b, c, d }.Take(count)], retry);
        return Gen.Frequency((4, move), (5, end), (3, linked));
    }

    private sealed record Leg(int From, int To, long AmountMinor);

    private abstract record Operation
    {
        public sealed record Move(int From, int To, long AmountMinor, bool Pending) : Operation;

        public sealed record End(int Index, TransferPhase Phase, long? AmountMinor) : Operation;

        public sealed record Linked(Leg[] Legs, bool Retry) : Operation
        {
            public override string ToString() => $"Linked [{string.Join(", ", Legs.Select(l => $"{l.From}->{l.To} {l.AmountMinor}"))}]{(Retry ? " twice" : "")}";
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
            }
            else
            {
                _available[r.CreditAccountId!] += r.AmountMinor;
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
            }

            return ((TransferStatus.Committed, RejectionReason.None), null);
        }

        public (TransferStatus, RejectionReason) End(string pendingId, TransferPhase phase, long? amountMinor)
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
            return (TransferStatus.Committed, RejectionReason.None);
        }
    }
}
