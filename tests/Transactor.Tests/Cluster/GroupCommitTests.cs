using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// Group commit as a reentrant grain uses it: every turn runs on one scheduler, one at a time,
/// as on an activation's scheduler.
/// </summary>
public sealed class GroupCommitTests
{
    [Fact]
    public Task Changes_made_while_a_write_gathers_share_that_write() => OneTurnAtATime(async () =>
    {
        var writes = 0;
        var commit = new GroupCommit(() => { writes++; return Task.CompletedTask; }, gatherDelay: TimeSpan.FromMilliseconds(50));

        var first = commit.Persisted(commit.Changed());
        await Task.Delay(10);
        var second = commit.Persisted(commit.Changed());
        var third = commit.Persisted(commit.Changed());
        await Task.WhenAll(first, second, third);

        Assert.Equal(1, writes);
        Assert.False(commit.Dirty);
    });

    [Fact]
    public Task Without_a_delay_the_changes_of_turns_already_queued_share_a_write() => OneTurnAtATime(async () =>
    {
        var writes = 0;
        var commit = new GroupCommit(() => { writes++; return Task.CompletedTask; });

        await Task.WhenAll(commit.Persisted(commit.Changed()), commit.Persisted(commit.Changed()), commit.Persisted(commit.Changed()));

        Assert.Equal(1, writes);
        Assert.False(commit.Dirty);
    });

    [Fact]
    public Task A_change_made_during_a_write_is_covered_by_the_next_one() => OneTurnAtATime(async () =>
    {
        var release = new TaskCompletionSource();
        var writes = 0;
        var commit = new GroupCommit(async () => { writes++; await release.Task; });

        var first = commit.Persisted(commit.Changed());
        await Task.Yield();
        Assert.Equal(1, writes);
        var second = commit.Persisted(commit.Changed());
        var third = commit.Persisted(commit.Changed());
        release.SetResult();
        await Task.WhenAll(first, second, third);

        Assert.Equal(2, writes);
        Assert.False(commit.Dirty);
    });

    private static Task OneTurnAtATime(Func<Task> body) =>
        Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.None, new ConcurrentExclusiveSchedulerPair().ExclusiveScheduler).Unwrap();
}
