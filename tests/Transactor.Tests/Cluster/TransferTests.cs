namespace Transactor.Tests.Cluster;

[Collection(ClusterTestGroup.Name)]
public sealed class TransferTests(ClusterFixture fixture)
{
    private readonly Ledger _ledger = new(fixture.Client);

    [Fact]
    public async Task Transfer_moves_money_between_accounts()
    {
        var (a, b) = await Pair(10_000, 500);

        var result = await _ledger.Execute(new TransferRequest(Ledger.NewId("t"), a, b, 2_500, "USD"));

        Assert.Equal(TransferStatus.Committed, result.Status);
        Assert.Equal(7_500, result.Debit!.AvailableMinor);
        Assert.Equal(3_000, result.Credit!.AvailableMinor);
        var after = await _ledger.Snapshots([a, b]);
        Assert.Equal([7_500L, 3_000L], after.Select(s => s.TotalMinor));
    }

    [Fact]
    public async Task Transfer_without_currency_takes_it_from_the_accounts()
    {
        var (a, b) = await Pair(1_000, 0);

        var result = await _ledger.Execute(new TransferRequest(Ledger.NewId("t"), a, b, 1_000, null));

        Assert.Equal(TransferStatus.Committed, result.Status);
        Assert.Equal(0, result.Debit!.AvailableMinor);
    }

    [Fact]
    public async Task Insufficient_funds_rejects_and_changes_nothing()
    {
        var (a, b) = await Pair(100, 0);

        var result = await _ledger.Execute(new TransferRequest(Ledger.NewId("t"), a, b, 101, "USD"));

        Assert.Equal(TransferStatus.Rejected, result.Status);
        Assert.Equal(RejectionReason.InsufficientFunds, result.Reason);
        await _ledger.AssertBalanced([a, b], 100);
        Assert.Equal([100L, 0L], (await _ledger.Snapshots([a, b])).Select(s => s.AvailableMinor));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(Money.MaxAmountMinor + 1)]
    public async Task Invalid_amount_is_rejected(long amountMinor)
    {
        var (a, b) = await Pair(100, 0);

        var result = await _ledger.Execute(new TransferRequest(Ledger.NewId("t"), a, b, amountMinor, "USD"));

        Assert.Equal(RejectionReason.InvalidAmount, result.Reason);
        await _ledger.AssertBalanced([a, b], 100);
    }

    [Fact]
    public async Task Same_account_on_both_sides_is_rejected()
    {
        var (a, _) = await Pair(100, 0);

        var result = await _ledger.Execute(new TransferRequest(Ledger.NewId("t"), a, a, 10, "USD"));

        Assert.Equal(RejectionReason.SameAccount, result.Reason);
        Assert.Equal(100, (await _ledger.Snapshots([a]))[0].AvailableMinor);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Unknown_account_is_rejected_on_either_side(bool unknownIsDebit)
    {
        var (a, _) = await Pair(100, 0);
        var unknown = Ledger.NewId("nobody");
        var request = unknownIsDebit
            ? new TransferRequest(Ledger.NewId("t"), unknown, a, 10, "USD")
            : new TransferRequest(Ledger.NewId("t"), a, unknown, 10, "USD");

        var result = await _ledger.Execute(request);

        Assert.Equal(RejectionReason.AccountNotFound, result.Reason);
        Assert.Null(await fixture.Client.GetAccount(unknown).GetSnapshot());
        await _ledger.AssertBalanced([a], 100);
    }

    [Fact]
    public async Task Currency_mismatch_between_accounts_is_rejected()
    {
        var usd = (await _ledger.OpenFunded(Ledger.NewId("usd"), 1, 1_000, "USD"))[0];
        var eur = (await _ledger.OpenFunded(Ledger.NewId("eur"), 1, 0, "EUR"))[0];

        var explicitCurrency = await _ledger.Execute(new TransferRequest(Ledger.NewId("t"), usd, eur, 10, "USD"));
        var fromAccounts = await _ledger.Execute(new TransferRequest(Ledger.NewId("t"), usd, eur, 10, null));
        var wrongRequest = await _ledger.Execute(new TransferRequest(Ledger.NewId("t"), usd, eur, 10, "GBP"));

        Assert.All([explicitCurrency, fromAccounts, wrongRequest], r => Assert.Equal(RejectionReason.CurrencyMismatch, r.Reason));
        await _ledger.AssertBalanced([usd, eur], 1_000);
    }

    [Fact]
    public async Task Same_transfer_id_twice_debits_once()
    {
        var (a, b) = await Pair(1_000, 0);
        var request = new TransferRequest(Ledger.NewId("t"), a, b, 300, "USD");

        var first = await _ledger.Execute(request);
        var second = await _ledger.Execute(request);

        Assert.Equal(TransferStatus.Committed, first.Status);
        Assert.Equal(TransferStatus.Committed, second.Status);
        Assert.Equal([700L, 300L], (await _ledger.Snapshots([a, b])).Select(s => s.AvailableMinor));
    }

    [Fact]
    public async Task Concurrent_retries_of_one_transfer_apply_it_once_and_agree()
    {
        var (a, b) = await Pair(1_000, 0);
        var request = new TransferRequest(Ledger.NewId("t"), a, b, 400, "USD");

        var results = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => _ledger.Coordinator.Execute(request)));

        Assert.All(results, r => Assert.Equal(TransferStatus.Committed, r.Status));
        Assert.Equal([600L, 400L], (await _ledger.Snapshots([a, b])).Select(s => s.AvailableMinor));
    }

    [Fact]
    public async Task A_rejection_is_replayed_even_after_the_reason_went_away()
    {
        var (a, b) = await Pair(100, 0);
        var request = new TransferRequest(Ledger.NewId("t"), a, b, 500, "USD");

        var first = await _ledger.Execute(request);
        await _ledger.Execute(TransferRequest.Deposit(Ledger.NewId("dep"), a, 1_000));
        var retry = await _ledger.Execute(request);

        Assert.Equal(RejectionReason.InsufficientFunds, first.Reason);
        Assert.Equal(RejectionReason.InsufficientFunds, retry.Reason);
        Assert.Equal(1_100, (await _ledger.Snapshots([a]))[0].AvailableMinor);
    }

    [Fact]
    public async Task Same_id_with_a_different_request_is_refused_and_changes_nothing()
    {
        var (a, b) = await Pair(1_000, 0);
        var id = Ledger.NewId("t");

        var original = await _ledger.Execute(new TransferRequest(id, a, b, 100, "USD"));
        var reused = await _ledger.Execute(new TransferRequest(id, a, b, 999, "USD"));
        var asDeposit = await _ledger.Execute(TransferRequest.Deposit(id, a, 100));

        Assert.Equal(TransferStatus.Committed, original.Status);
        Assert.Equal(RejectionReason.IdempotencyKeyReused, reused.Reason);
        Assert.Equal(RejectionReason.IdempotencyKeyReused, asDeposit.Reason);
        Assert.Equal([900L, 100L], (await _ledger.Snapshots([a, b])).Select(s => s.AvailableMinor));
        var recorded = await fixture.Client.GetTransferResult(id);
        Assert.Equal(100, recorded!.Request.AmountMinor);
    }

    [Fact]
    public async Task Deposits_and_withdrawals_are_idempotent_by_operation_id()
    {
        var (a, _) = await Pair(0, 0);
        var deposit = TransferRequest.Deposit(Ledger.NewId("dep"), a, 1_000);
        var withdrawal = TransferRequest.Withdrawal(Ledger.NewId("wd"), a, 250);

        await _ledger.Execute(deposit);
        await _ledger.Execute(deposit);
        var w1 = await _ledger.Coordinator.Execute(withdrawal);
        var w2 = await _ledger.Coordinator.Execute(withdrawal);
        var tooMuch = await _ledger.Coordinator.Execute(TransferRequest.Withdrawal(Ledger.NewId("wd"), a, 10_000));

        Assert.Equal(TransferStatus.Committed, w1.Status);
        Assert.Equal(TransferStatus.Committed, w2.Status);
        Assert.Equal(RejectionReason.InsufficientFunds, tooMuch.Reason);
        Assert.Equal(750, (await _ledger.Snapshots([a]))[0].AvailableMinor);
    }

    private async Task<(string A, string B)> Pair(long balanceA, long balanceB)
    {
        var prefix = Ledger.NewId("acct");
        var a = (await _ledger.OpenFunded(prefix + "-a", 1, balanceA))[0];
        var b = (await _ledger.OpenFunded(prefix + "-b", 1, balanceB))[0];
        return (a, b);
    }
}
