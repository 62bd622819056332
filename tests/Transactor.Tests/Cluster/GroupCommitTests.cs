using Transactor.Grains;

namespace Transactor.Tests.Cluster;

public sealed class GroupCommitTests
{
    [Fact]
    public async Task Changes_made_while_a_write_gathers_share_that_write()
    {
        var writes = 0;
        var commit = new GroupCommit(() => { writes++; return Task.CompletedTask; }, gatherDelay: TimeSpan.FromMilliseconds(50));

        var first = commit.Persisted(commit.Changed());
        var second = commit.Persisted(commit.Changed());
        var third = commit.Persisted(commit.Changed());
        await Task.WhenAll(first, second, third);

        Assert.Equal(1, writes);
        Assert.False(commit.Dirty);
    }

    [Fact]
    public async Task Without_a_gather_delay_a_write_that_completes_at_once_covers_only_its_own_change()
    {
        var writes = 0;
        var commit = new GroupCommit(() => { writes++; return Task.CompletedTask; });

        await Task.WhenAll(commit.Persisted(commit.Changed()), commit.Persisted(commit.Changed()), commit.Persisted(commit.Changed()));

        Assert.Equal(3, writes);
    }

    [Fact]
    public async Task A_change_made_during_a_write_is_covered_by_the_next_one()
    {
        var release = new TaskCompletionSource();
        var writes = 0;
        var commit = new GroupCommit(async () => { writes++; await release.Task; });

        var first = commit.Persisted(commit.Changed());
        var second = commit.Persisted(commit.Changed());
        var third = commit.Persisted(commit.Changed());
        Assert.Equal(1, writes);
        release.SetResult();
        await Task.WhenAll(first, second, third);

        Assert.Equal(2, writes);
        Assert.False(commit.Dirty);
    }
}
