namespace Transactor.Tests.Cluster;

/// <summary>Test-side view of the ledger: opens and funds accounts, executes movements, audits the books.</summary>
internal sealed class Ledger(IClusterClient client)
{
    private long _depositedMinor;
    private long _withdrawnMinor;

    public ITransferCoordinatorGrain Coordinator => client.GetGrain<ITransferCoordinatorGrain>(0);

    public long NetInflowMinor => Interlocked.Read(ref _depositedMinor) - Interlocked.Read(ref _withdrawnMinor);

    public static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    /// <summary>
    /// True for the answers a caller gets when the ledger could not answer a call during a fault:
    /// the request is not acknowledged, and its record decides whether it happened. Among them is
    /// <see cref="LedgerUnavailableException"/>, a recovery shard stepping down after a failed
    /// write (a write from a killed silo's activation can land after its successor read the row).
    /// </summary>
    public static bool IsUnanswered(Exception ex) =>
        ex is OrleansException or TimeoutException or InvalidOperationException or OperationCanceledException or LedgerUnavailableException;

    public async Task<string[]> OpenFunded(string prefix, int count, long balanceMinor, string currency = "USD")
    {
        var ids = Enumerable.Range(0, count).Select(i => $"{prefix}-{i:D5}").ToArray();
        await Task.WhenAll(ids.Select(async id =>
        {
            var opened = await client.GetAccount(id).Open(currency, null);
            Assert.Equal(OpenAccountStatus.Opened, opened.Status);
            if (balanceMinor > 0)
            {
                var deposit = await Execute(TransferRequest.Deposit(NewId("dep"), id, balanceMinor));
                Assert.Equal(TransferStatus.Committed, deposit.Status);
            }
        }));
        return ids;
    }

    /// <summary>Executes a movement and keeps count of committed deposits and withdrawals.</summary>
    public async Task<TransferResult> Execute(TransferRequest request)
    {
        var result = await Coordinator.Execute(request);
        Track(result);
        return result;
    }

    public void Track(TransferResult result)
    {
        if (result.Status != TransferStatus.Committed)
        {
            return;
        }

        if (result.Request.Kind == TransferKind.Deposit)
        {
            Interlocked.Add(ref _depositedMinor, result.Request.AmountMinor);
        }
        else if (result.Request.Kind == TransferKind.Withdrawal)
        {
            Interlocked.Add(ref _withdrawnMinor, result.Request.AmountMinor);
        }
    }

    public async Task<AccountSnapshot[]> Snapshots(IEnumerable<string> ids) =>
        (await Task.WhenAll(ids.Select(id => client.GetAccount(id).GetSnapshot())))
        .Select(s => s ?? throw new InvalidOperationException("An account of the test is not open."))
        .ToArray();

    /// <summary>
    /// The books once the system is quiet: totals add up to what came in minus what went out,
    /// nothing is in flight, and no balance is below its floor: available may go down to minus the
    /// credit limit of an account that allows an overdraft (0 otherwise); the sum of totals, negative
    /// ones included, is what came in minus what went out.
    /// </summary>
    public async Task AssertBalanced(IReadOnlyCollection<string> ids, long expectedTotalMinor)
    {
        var snapshots = await Snapshots(ids);
        foreach (var s in snapshots)
        {
            Assert.True(s.AvailableMinor >= s.FloorMinor, $"{s.AccountId}: available {s.AvailableMinor} < its floor {s.FloorMinor}");
            Assert.True(s.HeldMinor >= 0, $"{s.AccountId}: held {s.HeldMinor} < 0");
            Assert.True(s.ReservedMinor == 0 && s.IncomingMinor == 0, $"{s.AccountId}: {s.ReservedMinor} reserved and {s.IncomingMinor} incoming by movements in flight");
        }

        var total = snapshots.Sum(s => s.TotalMinor);
        Assert.True(total == expectedTotalMinor, $"sum of totals {total} != deposits minus withdrawals {expectedTotalMinor}");
    }

    /// <summary>
    /// After a crash: waits for every <paramref name="sent"/> movement to end, then checks that each
    /// acknowledged commit is recorded as committed, and that each account's available balance is
    /// exactly its start plus its committed records' effects (none lost, none applied twice).
    /// <paramref name="context"/> opens every failure message.
    /// </summary>
    public async Task AssertRecordsExplainBalances(
        IEnumerable<TransferRequest> sent, IEnumerable<TransferResult> acknowledged, IReadOnlyCollection<string> ids, long initialMinor, TimeSpan timeout, string context)
    {
        var records = new Dictionary<string, TransferResult>(StringComparer.Ordinal);
        foreach (var request in sent)
        {
            if (await WaitForEnd(request.TransferId, timeout) is { } record)
            {
                records[request.TransferId] = record;
            }
        }

        foreach (var ack in acknowledged.Where(a => a.Status == TransferStatus.Committed))
        {
            Assert.True(records.TryGetValue(ack.TransferId, out var record) && record.Status == TransferStatus.Committed,
                $"{context}: acknowledged transfer {ack.TransferId} is not recorded as committed");
        }

        var expected = ids.ToDictionary(id => id, _ => initialMinor, StringComparer.Ordinal);
        foreach (var record in records.Values.Where(r => r.Status == TransferStatus.Committed))
        {
            expected[record.Request.DebitAccountId!] -= record.Request.AmountMinor;
            expected[record.Request.CreditAccountId!] += record.Request.AmountMinor;
        }

        foreach (var s in await Snapshots(ids))
        {
            Assert.True(expected[s.AccountId] == s.AvailableMinor, $"{context}: {s.AccountId} holds {s.AvailableMinor}, its committed transfers say {expected[s.AccountId]}");
        }
    }

    /// <summary>
    /// Waits until the record of <paramref name="transferId"/> is decided and returns it, or returns
    /// null when nothing is recorded under the id (its Begin never completed).
    /// </summary>
    public async Task<TransferResult?> WaitForEnd(string transferId, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var result = await client.GetTransferResult(transferId);
            if (result is null || result.Status != TransferStatus.Pending)
            {
                if (result is not null)
                {
                    Track(result);
                }

                return result;
            }

            Assert.True(DateTime.UtcNow < deadline, $"transfer {transferId} still pending after {timeout}");
            await Task.Delay(100);
        }
    }

    /// <summary>As <see cref="WaitForEnd"/>, for a transfer known to be recorded.</summary>
    public async Task<TransferResult> WaitForRecordedEnd(string transferId, TimeSpan timeout) =>
        await WaitForEnd(transferId, timeout) ?? throw new Xunit.Sdk.XunitException($"nothing is recorded under transfer id {transferId}");

    /// <summary>Waits until no account of <paramref name="ids"/> holds money in flight.</summary>
    public async Task WaitUntilQuiet(IReadOnlyCollection<string> ids, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var snapshots = await Snapshots(ids);
            var busy = snapshots.Where(s => s.ReservedMinor != 0 || s.IncomingMinor != 0).Select(s => $"{s.AccountId}: reserved {s.ReservedMinor}, incoming {s.IncomingMinor}").ToArray();
            if (busy.Length == 0)
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, $"still in flight after {timeout}: {string.Join(", ", busy)}");
            await Task.Delay(100);
        }
    }

    /// <summary>Opens a pending-transfer pair: an account funded with <paramref name="fundedMinor"/> and an empty one.</summary>
    public async Task<(string A, string B)> OpenPair(long fundedMinor)
    {
        var prefix = NewId("p");
        var a = (await OpenFunded(prefix + "a", 1, fundedMinor))[0];
        var b = (await OpenFunded(prefix + "b", 1, 0))[0];
        return (a, b);
    }

    /// <summary>Waits until the pending transfer <paramref name="pendingId"/> has ended (posted, voided or expired) and returns its end.</summary>
    public async Task<TransferResult> WaitForPendingEnd(string pendingId, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await client.GetTransferResult(PendingTransfers.EndId(pendingId)) is { Status: not TransferStatus.Pending } ended)
            {
                return ended;
            }

            Assert.True(DateTime.UtcNow < deadline, $"pending transfer {pendingId} did not end within {timeout}");
            await Task.Delay(100);
        }
    }

    /// <summary>Asserts an account's available and pending balances, and that it holds no money in flight.</summary>
    public async Task AssertPendingBalances(string id, (long Available, long PendingDebit, long PendingCredit) expected)
    {
        var s = (await client.GetAccount(id).GetSnapshot())!;
        var actual = (s.AvailableMinor, s.PendingDebitMinor, s.PendingCreditMinor);
        Assert.True(expected == actual, $"account {id}: expected {expected}, got {actual}");
        Assert.True(s is { ReservedMinor: 0, IncomingMinor: 0 }, $"account {id} has money in flight");
    }

    /// <summary>Polls <paramref name="condition"/> every 100 ms until it holds, failing after <paramref name="timeout"/>.</summary>
    public static async Task WaitUntil(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"the condition did not hold within {timeout}");
            await Task.Delay(100);
        }
    }

    /// <summary>Retries <paramref name="request"/> as a client would until it has an outcome.</summary>
    public async Task<TransferResult> RetryUntilEnded(TransferRequest request, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                var result = await Coordinator.Execute(request);
                if (result.Status != TransferStatus.Pending)
                {
                    return result;
                }
            }
            catch (Exception ex) when (ex is not Xunit.Sdk.XunitException && DateTime.UtcNow < deadline)
            {
                // A shard stepping down after a failed write answers once with an error: retry.
            }

            Assert.True(DateTime.UtcNow < deadline, $"{request.TransferId} has no outcome after {timeout}");
            await Task.Delay(100);
        }
    }
}
