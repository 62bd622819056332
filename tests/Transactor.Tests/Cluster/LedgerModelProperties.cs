using FsCheck;
using FsCheck.Fluent;

namespace Transactor.Tests.Cluster;

/// <summary>
/// Random sequences of opens, deposits, withdrawals, transfers and retries, run one by one against
/// the grains and against a plain sequential model of the ledger: outcomes and balances must agree.
/// </summary>
[Collection(ClusterTestGroup.Name)]
public sealed class LedgerModelProperties(ClusterFixture fixture)
{
    private const int AccountSlots = 4;
    private static readonly string[] Currencies = ["USD", "EUR"];

    [Fact]
    public void Grains_agree_with_a_sequential_model()
    {
        // A fixed seed: a failure names its seed and replays exactly.
        var replay = new Replay(new Rnd(20261124, 0x9E3779B97F4A7C15), Microsoft.FSharp.Core.FSharpOption<int>.None);
        var config = Config.QuickThrowOnFailure.WithMaxTest(40).WithEndSize(30).WithReplay(replay);
        var property = Prop.ForAll(Arb.From(Gen.ListOf(OperationGen()).Select(l => l.ToArray())), operations =>
            Task.Run(() => RunBoth(operations)).GetAwaiter().GetResult());
        Check.One(config, property);
    }

    private async Task<bool> RunBoth(Operation[] operations)
    {
        var prefix = Ledger.NewId("model");
        var accountIds = Enumerable.Range(0, AccountSlots).Select(i => $"{prefix}-{i}").ToArray();
        var model = new Model();
        var coordinator = fixture.Client.GetGrain<ITransferCoordinatorGrain>(0);
        var sent = new List<TransferRequest>();

        for (var step = 0; step < operations.Length; step++)
        {
            var op = operations[step];
            switch (op)
            {
                case Operation.Open open:
                {
                    var id = accountIds[open.Account];
                    var actual = (await fixture.Client.GetAccount(id).Open(open.Currency, null)).Status;
                    var expected = model.Open(id, open.Currency);
                    Assert.True(expected == actual, $"step {step} {op}: model {expected}, grains {actual}");
                    break;
                }

                case Operation.Move move:
                {
                    var request = move.ToRequest($"{prefix}-op{step}", accountIds);
                    sent.Add(request);
                    await Compare(step, op, request);
                    break;
                }

                case Operation.Retry retry when sent.Count > 0:
                {
                    var original = sent[retry.Index % sent.Count];
                    var request = retry.ChangeAmount ? original with { AmountMinor = original.AmountMinor + 1 } : original;
                    await Compare(step, op, request);
                    break;
                }
            }
        }

        foreach (var id in accountIds)
        {
            var snapshot = await fixture.Client.GetAccount(id).GetSnapshot();
            var expected = model.Available(id);
            Assert.True(expected == snapshot?.AvailableMinor, $"account {id}: model {expected}, grains {snapshot?.AvailableMinor}");
            Assert.True(snapshot is null || (snapshot.ReservedMinor == 0 && snapshot.IncomingMinor == 0), $"account {id} has money in flight");
        }

        return true;

        async Task Compare(int step, Operation op, TransferRequest request)
        {
            var expected = model.Execute(request);
            var actual = await coordinator.Execute(request);
            Assert.True(
                expected.Status == actual.Status && expected.Reason == actual.Reason,
                $"step {step} {op}: model {expected.Status}/{expected.Reason}, grains {actual.Status}/{actual.Reason}");
        }
    }

    private static Gen<Operation> OperationGen()
    {
        var account = Gen.Choose(0, AccountSlots - 1);
        var amount = Gen.OneOf(Gen.Choose(1, 500).Select(i => (long)i), Gen.Elements(0L, -1L, Money.MaxAmountMinor + 1));
        var currency = Gen.Elements<string?>("USD", "EUR", null);
        var open = from a in account from c in Gen.Elements(Currencies) select (Operation)new Operation.Open(a, c);
        var deposit = from a in account from m in amount select (Operation)new Operation.Move(null, a, m, null);
        var withdraw = from a in account from m in amount select (Operation)new Operation.Move(a, null, m, null);
        var transfer = from f in account from t in account from m in amount from c in currency select (Operation)new Operation.Move(f, t, m, c);
        var retry = from i in Gen.Choose(0, 1_000) from change in Gen.Elements(false, false, true) select (Operation)new Operation.Retry(i, change);
        return Gen.Frequency((2, open), (3, deposit), (2, withdraw), (5, transfer), (2, retry));
    }

    private abstract record Operation
    {
        public sealed record Open(int Account, string Currency) : Operation;

        public sealed record Move(int? From, int? To, long AmountMinor, string? Currency) : Operation
        {
            public TransferRequest ToRequest(string id, string[] accounts) =>
                new(id, From is { } f ? accounts[f] : null, To is { } t ? accounts[t] : null, AmountMinor, Currency);
        }

        public sealed record Retry(int Index, bool ChangeAmount) : Operation;
    }

    /// <summary>The ledger's rules, written as plainly as possible and independently of the grains.</summary>
    private sealed class Model
    {
        private readonly Dictionary<string, (string Currency, long Available)> _accounts = [];
        private readonly Dictionary<string, (TransferRequest Request, TransferStatus Status, RejectionReason Reason)> _recorded = [];

        public OpenAccountStatus Open(string id, string currency)
        {
            if (_accounts.TryGetValue(id, out var existing))
            {
                return existing.Currency == currency ? OpenAccountStatus.AlreadyOpen : OpenAccountStatus.Conflict;
            }

            _accounts[id] = (currency, 0);
            return OpenAccountStatus.Opened;
        }

        public long? Available(string id) => _accounts.TryGetValue(id, out var a) ? a.Available : null;

        public (TransferStatus Status, RejectionReason Reason) Execute(TransferRequest r)
        {
            // Checks on the request alone are not recorded: the same request always fails them the same way.
            if (r.DebitAccountId is not null && r.DebitAccountId == r.CreditAccountId)
            {
                return (TransferStatus.Rejected, RejectionReason.SameAccount);
            }

            if (r.AmountMinor <= 0 || r.AmountMinor > Money.MaxAmountMinor)
            {
                return (TransferStatus.Rejected, RejectionReason.InvalidAmount);
            }

            if (_recorded.TryGetValue(r.TransferId, out var seen))
            {
                return seen.Request == r ? (seen.Status, seen.Reason) : (TransferStatus.Rejected, RejectionReason.IdempotencyKeyReused);
            }

            var reason = Check(r);
            if (reason == RejectionReason.None)
            {
                if (r.DebitAccountId is { } d)
                {
                    _accounts[d] = _accounts[d] with { Available = _accounts[d].Available - r.AmountMinor };
                }

                if (r.CreditAccountId is { } c)
                {
                    _accounts[c] = _accounts[c] with { Available = _accounts[c].Available + r.AmountMinor };
                }
            }

            var outcome = reason == RejectionReason.None ? TransferStatus.Committed : TransferStatus.Rejected;
            _recorded[r.TransferId] = (r, outcome, reason);
            return (outcome, reason);
        }

        private RejectionReason Check(TransferRequest r)
        {
            // Accounts are asked in ascending id order; the first refusal is the answer.
            var sides = new List<(string Id, bool Debit)>();
            if (r.DebitAccountId is { } d)
            {
                sides.Add((d, true));
            }

            if (r.CreditAccountId is { } c)
            {
                sides.Add((c, false));
            }

            var currency = r.Currency;
            foreach (var (id, debit) in sides.OrderBy(s => s.Id, StringComparer.Ordinal))
            {
                if (!_accounts.TryGetValue(id, out var account))
                {
                    return RejectionReason.AccountNotFound;
                }

                if (currency is not null && currency != account.Currency)
                {
                    return RejectionReason.CurrencyMismatch;
                }

                if (debit && account.Available < r.AmountMinor)
                {
                    return RejectionReason.InsufficientFunds;
                }

                currency ??= account.Currency;
            }

            return RejectionReason.None;
        }
    }
}
