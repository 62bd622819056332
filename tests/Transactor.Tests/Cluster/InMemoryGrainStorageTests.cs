using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

public sealed class InMemoryGrainStorageTests
{
    private static readonly Serializer Serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

    private readonly InMemoryGrainStorage _storage = new(new InMemoryLedgerStore(), Serializer);
    private readonly GrainId _grain = GrainId.Create("directory", "0");

    [Fact]
    public async Task A_row_rewritten_larger_and_smaller_in_place_reads_back_what_was_last_written()
    {
        var state = new GrainState<AccountDirectoryState>(new AccountDirectoryState { AccountIds = ["a"] });
        await _storage.WriteStateAsync("directory", _grain, state);

        foreach (var count in new[] { 5_000, 3, 0, 700 })
        {
            state.State = new AccountDirectoryState { AccountIds = Enumerable.Range(0, count).Select(i => $"account-{i}").ToList() };
            await _storage.WriteStateAsync("directory", _grain, state);

            var read = new GrainState<AccountDirectoryState>();
            await _storage.ReadStateAsync("directory", _grain, read);
            Assert.Equal(state.State.AccountIds, read.State!.AccountIds);
            Assert.Equal(state.ETag, read.ETag);
        }
    }

    /// <summary>
    /// New rows share slabs of the store: thousands of rows of many sizes, written from many
    /// threads at once, over several slabs, then half of them rewritten larger or smaller, must each
    /// read back exactly what was last written to it.
    /// </summary>
    [Fact]
    public async Task Rows_written_at_once_across_slabs_each_read_back_their_own_bytes()
    {
        const int rows = 4_000;
        var grains = Enumerable.Range(0, rows).Select(i => GrainId.Create("directory", $"row-{i}")).ToArray();
        static AccountDirectoryState Content(int row, int size) =>
            new() { AccountIds = Enumerable.Range(0, size).Select(i => $"{row}-{i}").ToList() };
        var states = new GrainState<AccountDirectoryState>[rows];

        await Parallel.ForAsync(0, rows, async (i, _) =>
        {
            states[i] = new GrainState<AccountDirectoryState>(Content(i, i % 97));
            await _storage.WriteStateAsync("directory", grains[i], states[i]);
        });
        await Parallel.ForAsync(0, rows / 2, async (i, _) =>
        {
            states[i].State = Content(-i, i % 2 == 0 ? 300 : 1);
            await _storage.WriteStateAsync("directory", grains[i], states[i]);
        });

        for (var i = 0; i < rows; i++)
        {
            var read = new GrainState<AccountDirectoryState>();
            await _storage.ReadStateAsync("directory", grains[i], read);
            Assert.Equal(states[i].State!.AccountIds, read.State!.AccountIds);
        }
    }

    [Fact]
    public async Task A_write_with_a_stale_etag_or_after_a_clear_is_refused_and_changes_nothing()
    {
        var first = new GrainState<AccountDirectoryState>(new AccountDirectoryState { AccountIds = ["a"] });
        await _storage.WriteStateAsync("directory", _grain, first);
        var stale = new GrainState<AccountDirectoryState> { State = new AccountDirectoryState { AccountIds = ["stale"] }, ETag = first.ETag };
        first.State = new AccountDirectoryState { AccountIds = ["b"] };
        await _storage.WriteStateAsync("directory", _grain, first);

        await Assert.ThrowsAsync<InconsistentStateException>(() => _storage.WriteStateAsync("directory", _grain, stale));
        var read = new GrainState<AccountDirectoryState>();
        await _storage.ReadStateAsync("directory", _grain, read);
        Assert.Equal(["b"], read.State!.AccountIds);

        await _storage.ClearStateAsync("directory", _grain, read);
        await Assert.ThrowsAsync<InconsistentStateException>(() => _storage.WriteStateAsync("directory", _grain, first));
        var cleared = new GrainState<AccountDirectoryState>();
        await _storage.ReadStateAsync("directory", _grain, cleared);
        Assert.False(cleared.RecordExists);
    }
}
