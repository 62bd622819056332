using Orleans.Concurrency;

namespace Transactor.Grains;

/// <summary>The persisted state of the <see cref="AccountDirectoryGrain"/>.</summary>
[GenerateSerializer, Alias("Transactor.AccountDirectoryState")]
public sealed class AccountDirectoryState
{
    /// <summary>Account ids in ordinal order.</summary>
    [Id(0)] public List<string> AccountIds { get; set; } = [];
}

/// <summary>See <see cref="IAccountDirectoryGrain"/>. Reentrant, with group commit, so opening many accounts at once shares writes.</summary>
[Reentrant]
public sealed class AccountDirectoryGrain(
    [PersistentState("directory", StorageNames.Ledger)] IPersistentState<AccountDirectoryState> state) : Grain, IAccountDirectoryGrain
{
    /// <summary>The largest page a caller may ask for.</summary>
    public const int MaxPageSize = 1_000;

    private GroupCommit _commit = null!;
    private List<string> _ids = null!;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _ids = [.. state.State.AccountIds];
        // A write takes a copy: a reentrant turn may add an id while the provider still serializes.
        _commit = new GroupCommit(() =>
        {
            state.State = new AccountDirectoryState { AccountIds = [.. _ids] };
            return state.WriteStateAsync();
        });
        return Task.CompletedTask;
    }

    public async Task Add(string accountId)
    {
        var ids = _ids;
        var index = ids.BinarySearch(accountId, StringComparer.Ordinal);
        if (index < 0)
        {
            ids.Insert(~index, accountId);
            await _commit.Persisted(_commit.Changed());
            return;
        }

        await _commit.Persisted(_commit.Latest);
    }

    public Task<AccountPage> Page(string? after, int limit)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxPageSize);
        var ids = _ids;
        var start = 0;
        if (after is not null)
        {
            var index = ids.BinarySearch(after, StringComparer.Ordinal);
            start = index >= 0 ? index + 1 : ~index;
        }

        var count = Math.Min(limit, ids.Count - start);
        var page = ids.GetRange(start, count);
        var next = start + count < ids.Count ? page[^1] : null;
        return Task.FromResult(new AccountPage(page, next, ids.Count));
    }
}
