using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Storage;
using Transactor.Domain;

namespace Transactor.Grains;

/// <summary>
/// Reads accounts' histories: one cheap read of the account (<see cref="IAccountGrain.GetHistoryHead"/>),
/// then the page rows it needs straight from ledger storage, so reading history costs the account
/// no storage wait. Page rows never change once the account has counted them, so a page read after
/// the head is always the page the head describes.
/// </summary>
[StatelessWorker, Reentrant]
public sealed class AccountHistoryGrain(HistoryCodec codec, IOptions<TransferOptions> options) : Grain, IAccountHistoryGrain
{
    /// <summary>The most entries one read returns.</summary>
    public const int MaxEntriesPerRead = 1_000;

    private IGrainStorage Storage => ServiceProvider.GetRequiredKeyedService<IGrainStorage>(StorageNames.Ledger);

    public Task<HistoryEntries?> Entries(string accountId, long afterSequence, int limit) => Read(accountId, afterSequence, limit, null);

    public Task<HistoryEntries?> EntriesMatching(string accountId, long afterSequence, int limit, MetadataMap filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        if (!filter.IsValid)
        {
            throw new ArgumentException($"A metadata filter holds 1-{MetadataMap.MaxEntries} keys of the allowed characters with values of at most {MetadataMap.MaxValueLength} characters.", nameof(filter));
        }

        return Read(accountId, afterSequence, limit, filter);
    }

    /// <summary>
    /// Walks the account's entries after <paramref name="afterSequence"/>, oldest first, from its page
    /// rows and then its tail, and keeps those that match <paramref name="filter"/> (all, without one)
    /// until it has <paramref name="limit"/> of them or has looked at as many entries as a read may:
    /// <paramref name="limit"/> without a filter (each entry looked at is kept), the silo's
    /// <see cref="TransferOptions.HistoryScanPerRead"/> with one.
    /// </summary>
    private async Task<HistoryEntries?> Read(string accountId, long afterSequence, int limit, MetadataMap? filter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(afterSequence);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxEntriesPerRead);
        if (await GrainFactory.GetAccount(accountId).GetHistoryHead() is not { } head)
        {
            return null;
        }

        var budget = filter is null ? limit : Math.Clamp(options.Value.HistoryScanPerRead, 1, MaxEntriesPerRead);
        var entries = new List<HistoryEntry>((int)Math.Min(limit, Math.Min(budget, Math.Max(0, head.Count - afterSequence))));
        var scanned = afterSequence;
        var paged = (long)head.Pages * head.PageSize;
        while (entries.Count < limit && scanned < head.Count && scanned - afterSequence < budget)
        {
            var next = scanned + 1;
            IReadOnlyList<HistoryEntry> run;
            long first;
            if (next > paged)
            {
                // In the tail, which holds entries paged + 1 to Count.
                (run, first) = (head.Tail, paged + 1);
            }
            else
            {
                var page = (int)((next - 1) / head.PageSize);
                (run, first) = (await ReadPage(accountId, page, head.PageSize), ((long)page * head.PageSize) + 1);
            }

            for (var i = (int)(next - first); i < run.Count && entries.Count < limit && scanned - afterSequence < budget; i++)
            {
                var entry = run[i];
                scanned = entry.Sequence;
                if (filter is null || entry.Matches(filter))
                {
                    entries.Add(entry);
                }
            }

            if (scanned < next)
            {
                // The head counts entries its tail does not hold: a bug, and a loop that would never end.
                throw new LedgerInvariantException($"Account '{accountId}': history entry {next} of {head.Count} is in neither a page row nor the tail.");
            }
        }

        return new HistoryEntries(entries, head.Count, scanned);
    }

    public async Task<BalanceAt?> BalanceAt(string accountId, DateTimeOffset at)
    {
        if (await GrainFactory.GetAccount(accountId).GetHistoryHead() is not { } head)
        {
            return null;
        }

        var account = head.Account;
        if (at < account.OpenedAt)
        {
            return new BalanceAt(BalanceAtStatus.BeforeOpening, account, 0, null, 0, 0, 0, 0);
        }

        if (head.Start is not { } start || at < start.At)
        {
            return new BalanceAt(BalanceAtStatus.BeforeHistory, account, 0, null, 0, 0, 0, 0);
        }

        // The last entry at or before the instant: in the tail, or else in the last page that starts at or before it.
        var found = Last(head.Tail, at);
        if (found is null && (head.Tail.Count == 0 || head.Tail[0].At > at))
        {
            var (low, high) = (0, head.Pages - 1);
            List<HistoryEntry>? candidate = null;
            while (low <= high)
            {
                var middle = low + ((high - low) / 2);
                var page = await ReadPage(accountId, middle, head.PageSize);
                if (page[0].At <= at)
                {
                    candidate = page;
                    low = middle + 1;
                }
                else
                {
                    high = middle - 1;
                }
            }

            found = candidate is null ? null : Last(candidate, at);
        }

        return found is { } e
            ? new BalanceAt(BalanceAtStatus.Known, account, e.Sequence, e.At, e.AvailableMinor, e.HeldMinor, e.PendingDebitMinor, e.PendingCreditMinor)
            : new BalanceAt(BalanceAtStatus.Known, account, 0, null, start.AvailableMinor, start.HeldMinor, start.PendingDebitMinor, start.PendingCreditMinor);
    }

    /// <summary>The last of <paramref name="entries"/> (in time order) at or before <paramref name="at"/>.</summary>
    private static HistoryEntry? Last(IReadOnlyList<HistoryEntry> entries, DateTimeOffset at)
    {
        var (low, high) = (0, entries.Count - 1);
        HistoryEntry? found = null;
        while (low <= high)
        {
            var middle = low + ((high - low) / 2);
            if (entries[middle].At <= at)
            {
                found = entries[middle];
                low = middle + 1;
            }
            else
            {
                high = middle - 1;
            }
        }

        return found;
    }

    private async Task<List<HistoryEntry>> ReadPage(string accountId, int page, int pageSize)
    {
        var row = new GrainState<HistoryPage>(new HistoryPage());
        await Storage.ReadStateAsync(HistoryPage.StateName, LedgerGrains.HistoryPageRowId(accountId, page), row);
        var entries = row.State is { } stored ? codec.Entries(stored) : [];
        var first = ((long)page * pageSize) + 1;
        if (entries.Count != pageSize || entries[0].Sequence != first)
        {
            // The account counted this page only once its row was stored: a missing or different row is a bug or lost data.
            throw new LedgerInvariantException($"Account '{accountId}': history page {page} holds {entries.Count} entries from {entries.FirstOrDefault()?.Sequence}, not {pageSize} from {first}.");
        }

        return entries;
    }
}
