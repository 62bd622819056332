using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Transactor.Grains;

/// <summary>
/// Refuses connections from other silos while this silo has not yet joined the cluster: until then,
/// nobody can know it, so a connection can only be meant for its predecessor, the process that
/// listened on the same address and port before it (a silo restarted in place, as in a full
/// restart).
/// </summary>
/// <remarks>
/// <para>
/// Why: an Orleans silo that connects to an address keeps the connection under that address and,
/// once the other side has introduced itself, under the other side's real address too. A silo that
/// still believes the predecessor alive and connects to it reaches the successor on the same port,
/// and then uses that one connection for both. When it learns that the predecessor is dead, Orleans
/// closes the predecessor's connections 10 s later (<c>SiloConnectionMaintainer</c>), and with them
/// the successor's: calls in flight on it are lost and wait out the response timeout (30 s). Seen in
/// docs/reliability.md, "Full restart".
/// </para>
/// <para>
/// What it does: Orleans listens on the silo port from the start of the runtime, seconds before the
/// silo reads the membership table (where it marks its predecessor dead) and writes itself into it
/// as joining. In between, every connection from another silo is refused, and a call to the
/// predecessor fails at once, as it should. From the moment this silo's own entry says joining, it
/// is known and probed. If its predecessor is still alive in its view then (Orleans' write that
/// marks it dead lost a race with another silo's write, and is retried at the next table read),
/// the refusals go on until it is dead, for at most <see cref="HoldAfterJoin"/>: less than the
/// probes a peer may miss before it suspects this silo. Then every connection is served. A silo
/// whose view of the table is a refresh behind can still dial the predecessor after that; refusing
/// it too would refuse the joiners that must reach this silo, which delayed every restarted silo's
/// join in a full restart (measured): not done. Liveness only: no rule of the ledger depends on
/// which connection carries a call.
/// </para>
/// </remarks>
internal sealed partial class SupersededSiloGuard(IServiceProvider services, ILocalSiloDetails local, IOptions<FailureDetectionOptions> detection, TimeProvider time, ILogger<SupersededSiloGuard> logger)
{
    private readonly TimeSpan _holdAfterJoin = HoldAfterJoin(detection.Value);
    private IClusterMembershipService? _membership;
    private bool _admitting;
    private long _joinedAt = long.MinValue;
    private long _refused;

    /// <summary>
    /// How long after joining this silo goes on refusing while its predecessor is still alive in its
    /// view: one probe period less than a peer may miss before it suspects this silo (3 s by default:
    /// probes every 2 s, suspected after 3 missed), so a refused peer misses at most two.
    /// </summary>
    public static TimeSpan HoldAfterJoin(FailureDetectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var hold = (options.ProbeTimeout * Math.Max(0, options.NumMissedProbesLimit - 1)) - TimeSpan.FromSeconds(1);
        return hold > TimeSpan.Zero ? hold : TimeSpan.Zero;
    }

    /// <summary>Connections refused so far.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>The middleware: a connection this silo refuses is closed before Orleans reads a byte of it.</summary>
    public ConnectionDelegate Wrap(ConnectionDelegate next) => context =>
    {
        if (Admits())
        {
            return next(context);
        }

        if (Interlocked.Increment(ref _refused) == 1)
        {
            LogRefusing(logger, local.SiloAddress);
        }

        context.Abort(new ConnectionAbortedException("This silo has not joined the cluster yet: the connection can only be meant for its predecessor on the same address."));
        return Task.CompletedTask;
    };

    /// <summary>
    /// Whether a connection from another silo may be served now: once this silo's own membership
    /// entry says joining or later, and its predecessor, if any, is dead or <see cref="HoldAfterJoin"/> has passed.
    /// </summary>
    public bool Admits()
    {
        if (Volatile.Read(ref _admitting))
        {
            return true;
        }

        _membership ??= services.GetRequiredService<IClusterMembershipService>();
        var members = _membership.CurrentSnapshot.Members;
        var silo = local.SiloAddress;
        if (!members.TryGetValue(silo, out var me) || me.Status is SiloStatus.None or SiloStatus.Created)
        {
            return false;
        }

        var now = time.GetTimestamp();
        var seen = Interlocked.CompareExchange(ref _joinedAt, now, long.MinValue);
        var joinedAt = seen == long.MinValue ? now : seen;
        var predecessorAlive = members.Values.Any(m => m.Status != SiloStatus.Dead && m.SiloAddress.Endpoint.Equals(silo.Endpoint) && m.SiloAddress.Generation < silo.Generation);
        if (predecessorAlive && time.GetElapsedTime(joinedAt, now) < _holdAfterJoin)
        {
            return false;
        }

        Volatile.Write(ref _admitting, true);
        LogAdmitting(logger, silo, Refused, predecessorAlive);
        return true;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo {Silo} refuses connections from other silos until it has joined the cluster: until then they can only be meant for its predecessor on the same address")]
    private static partial void LogRefusing(ILogger logger, SiloAddress silo);

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo {Silo} has joined and accepts connections from other silos ({Refused} refused before; predecessor still alive in its view: {PredecessorAlive})")]
    private static partial void LogAdmitting(ILogger logger, SiloAddress silo, long refused, bool predecessorAlive);
}
