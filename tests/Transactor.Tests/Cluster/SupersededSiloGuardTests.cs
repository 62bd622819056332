using System.Collections.Immutable;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// The rules by which a silo refuses other silos' connections until it has joined (and, for a
/// bounded time, until its predecessor is dead), when they can only be meant for its predecessor
/// on the same address (docs/reliability.md, "Full restart"),
/// against membership views as Orleans' membership service would show them.
/// </summary>
public sealed class SupersededSiloGuardTests
{
    private static readonly IPEndPoint Endpoint = new(IPAddress.Loopback, 23111);
    private static readonly SiloAddress Predecessor = SiloAddress.New(Endpoint, 100);
    private static readonly SiloAddress Me = SiloAddress.New(Endpoint, 200);
    private static readonly SiloAddress Other = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 23112), 150);

    [Fact]
    public void Before_its_first_table_read_a_silo_refuses_every_silo_connection()
    {
        var (guard, membership, _) = Create();
        membership.Snapshot = View(MembershipVersion.MinValue, (Me, SiloStatus.Created));

        Assert.False(guard.Admits());
    }

    [Fact]
    public void After_the_read_and_before_it_joins_a_restarted_silo_still_refuses_whether_or_not_its_predecessor_is_dead_yet()
    {
        var (guard, membership, _) = Create();
        membership.Snapshot = View(new MembershipVersion(3), (Me, SiloStatus.Created), (Predecessor, SiloStatus.Active), (Other, SiloStatus.Active));
        Assert.False(guard.Admits());

        membership.Snapshot = View(new MembershipVersion(4), (Me, SiloStatus.Created), (Predecessor, SiloStatus.Dead), (Other, SiloStatus.Active));
        Assert.False(guard.Admits());
    }

    [Fact]
    public void Once_it_has_joined_with_its_predecessor_dead_a_silo_admits_and_stays_so()
    {
        var (guard, membership, _) = Create();
        membership.Snapshot = View(new MembershipVersion(3), (Me, SiloStatus.Created), (Predecessor, SiloStatus.Dead));
        Assert.False(guard.Admits());

        membership.Snapshot = View(new MembershipVersion(4), (Me, SiloStatus.Joining), (Predecessor, SiloStatus.Dead));
        Assert.True(guard.Admits());

        membership.Snapshot = View(new MembershipVersion(5), (Me, SiloStatus.Created), (Predecessor, SiloStatus.Active));
        Assert.True(guard.Admits());
    }

    [Fact]
    public void A_joined_silo_whose_predecessor_is_still_alive_refuses_until_it_is_dead()
    {
        var (guard, membership, clock) = Create();
        // Orleans' write that marks the predecessor dead lost a race: it is retried at the next table read.
        membership.Snapshot = View(new MembershipVersion(4), (Me, SiloStatus.Joining), (Predecessor, SiloStatus.Active));
        Assert.False(guard.Admits());

        clock.Advance(TimeSpan.FromSeconds(1.5));
        Assert.False(guard.Admits());

        membership.Snapshot = View(new MembershipVersion(5), (Me, SiloStatus.Joining), (Predecessor, SiloStatus.Dead));
        Assert.True(guard.Admits());
    }

    [Fact]
    public void A_joined_silo_stops_waiting_for_its_predecessor_before_peers_could_suspect_it()
    {
        var (guard, membership, clock) = Create();
        var hold = SupersededSiloGuard.HoldAfterJoin(new FailureDetectionOptions());
        Assert.Equal(TimeSpan.FromSeconds(3), hold);
        membership.Snapshot = View(new MembershipVersion(4), (Me, SiloStatus.Joining), (Predecessor, SiloStatus.Active));
        Assert.False(guard.Admits());

        clock.Advance(hold - TimeSpan.FromMilliseconds(1));
        Assert.False(guard.Admits());

        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(guard.Admits());
    }

    [Fact]
    public void A_silo_that_is_active_admits_with_no_predecessor_at_all()
    {
        var (guard, membership, _) = Create();
        membership.Snapshot = View(new MembershipVersion(3), (Me, SiloStatus.Active), (Other, SiloStatus.Joining));

        Assert.True(guard.Admits());
    }

    [Fact]
    public async Task A_refused_connection_is_aborted_before_orleans_reads_it_and_counted()
    {
        var (guard, membership, _) = Create();
        membership.Snapshot = View(MembershipVersion.MinValue, (Me, SiloStatus.Created));
        var reached = false;
        var middleware = guard.Wrap(_ => { reached = true; return Task.CompletedTask; });
        var connection = new DefaultConnectionContext();

        await middleware(connection);

        Assert.False(reached);
        Assert.Equal(1, guard.Refused);
        // DefaultConnectionContext signals an abort on the thread pool.
        Assert.True(SpinWait.SpinUntil(() => connection.ConnectionClosed.IsCancellationRequested, TimeSpan.FromSeconds(5)));

        membership.Snapshot = View(new MembershipVersion(1), (Me, SiloStatus.Joining));
        await middleware(new DefaultConnectionContext());
        Assert.True(reached);
        Assert.Equal(1, guard.Refused);
    }

    private static (SupersededSiloGuard Guard, FakeMembership Membership, FakeTimeProvider Clock) Create()
    {
        var membership = new FakeMembership();
        var services = new ServiceCollection().AddSingleton<IClusterMembershipService>(membership).BuildServiceProvider();
        var clock = new FakeTimeProvider();
        return (new SupersededSiloGuard(services, new LocalSilo(), Microsoft.Extensions.Options.Options.Create(new FailureDetectionOptions()), clock, NullLogger<SupersededSiloGuard>.Instance), membership, clock);
    }

    private static ClusterMembershipSnapshot View(MembershipVersion version, params (SiloAddress Silo, SiloStatus Status)[] members) =>
        new(members.ToImmutableDictionary(m => m.Silo, m => new ClusterMember(m.Silo, m.Status, m.Silo.ToString())), version);

    private sealed class FakeMembership : IClusterMembershipService
    {
        public ClusterMembershipSnapshot Snapshot { get; set; } = View(MembershipVersion.MinValue);

        public ClusterMembershipSnapshot CurrentSnapshot => Snapshot;

        public IAsyncEnumerable<ClusterMembershipSnapshot> MembershipUpdates => throw new NotSupportedException();

        public ValueTask Refresh(MembershipVersion minimumVersion = default, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public Task<bool> TryKill(SiloAddress siloAddress) => Task.FromResult(false);
    }

    private sealed class LocalSilo : ILocalSiloDetails
    {
        public string ClusterId => "test";

        public string DnsHostName => "localhost";

        public SiloAddress GatewayAddress => SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 33000), 200);

        public string Name => "silo0";

        public SiloAddress SiloAddress => Me;
    }
}
