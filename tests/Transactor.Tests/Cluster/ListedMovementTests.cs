using Microsoft.Extensions.Time.Testing;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>The fencing rules of one listed movement's leases and decision, without a cluster (docs/transfers.md, rules 1 and 3).</summary>
public sealed class ListedMovementTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public void A_begun_movement_holds_epoch_1_and_no_second_lease_is_handed_out_while_it_lasts()
    {
        var listed = ListedMovement.Begun(Request(), _time);

        _time.Advance(Lease - TimeSpan.FromTicks(1));

        Assert.True(listed.Holds(1));
        Assert.Null(listed.TakeLease(_time, Lease));
    }

    [Fact]
    public void Each_lease_after_the_last_ran_out_gets_the_next_epoch_and_fences_out_the_earlier()
    {
        var listed = ListedMovement.Begun(Request(), _time);

        _time.Advance(Lease);
        var second = listed.TakeLease(_time, Lease);
        _time.Advance(Lease);
        var third = listed.TakeLease(_time, Lease);

        Assert.Equal((2L, 3L), (second, third));
        Assert.False(listed.Holds(2));
        Assert.False(listed.Renew(2, _time), "a superseded lease renewed");
        Assert.False(listed.Decide(RejectionReason.None, 2, _time.GetUtcNow()), "a superseded lease decided");
        Assert.Equal(TransferStatus.Pending, listed.Record!.Status);
    }

    [Fact]
    public void Only_the_latest_epoch_decides_once_and_the_decision_carries_its_epoch()
    {
        var listed = ListedMovement.Begun(Request(), _time);
        _time.Advance(Lease);
        var epoch = listed.TakeLease(_time, Lease)!.Value;

        Assert.True(listed.Decide(RejectionReason.InsufficientFunds, epoch, _time.GetUtcNow()));
        Assert.False(listed.Decide(RejectionReason.None, epoch, _time.GetUtcNow()));

        Assert.Equal((TransferStatus.Rejected, RejectionReason.InsufficientFunds, epoch), (listed.Record!.Status, listed.Record.Reason, listed.Record.DecidedEpoch));
    }

    [Fact]
    public void A_renewed_lease_keeps_its_epoch_and_holds_others_off_for_another_lease()
    {
        var listed = ListedMovement.Begun(Request(), _time);
        _time.Advance(Lease - TimeSpan.FromSeconds(1));

        Assert.True(listed.Renew(1, _time));
        _time.Advance(Lease - TimeSpan.FromSeconds(1));

        Assert.Null(listed.TakeLease(_time, Lease));
        Assert.True(listed.Holds(1));
    }

    [Fact]
    public void No_lease_is_handed_out_while_the_outcome_is_being_written()
    {
        var listed = ListedMovement.Begun(Request(), _time);
        Assert.True(listed.Decide(RejectionReason.None, 1, _time.GetUtcNow()));
        listed.Completing = true;
        _time.Advance(Lease * 2);

        Assert.Null(listed.TakeLease(_time, Lease));
        Assert.False(listed.Holds(1));
    }

    [Fact]
    public void A_listing_of_an_earlier_version_gets_epoch_1_with_its_first_lease()
    {
        var listed = new ListedMovement(_time.GetUtcNow(), new TransferRecord(Request(), TransferStatus.Pending, RejectionReason.None, _time.GetUtcNow(), null));

        Assert.Equal(1L, listed.TakeLease(_time, Lease));
    }

    private static TransferRequest Request() => new("t-1", "acct-a", "acct-b", 100, "USD");
}
