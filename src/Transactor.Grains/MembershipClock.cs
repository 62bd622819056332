using System.Diagnostics;

namespace Transactor.Grains;

/// <summary>
/// The clock of Orleans' membership loops and silo watchdog (<see cref="TimeProviderNames.Membership"/>),
/// with timestamps counted from when this clock was made (the silo's construction) instead of from
/// the machine's boot. Only the origin differs: every interval Orleans measures with it is the same.
/// </summary>
/// <remarks>
/// Orleans 10.4's watchdog starts the thread that checks for stalls before it sets the time of the
/// last participant check, so that thread's first look can see the default timestamp, 0, and warn
/// "Participant check thread has not completed for" the machine's uptime ("... 00:18:16 ...
/// deadlock") and record a stall in the silo's health history, on a healthy start. With timestamps
/// from the silo's construction, the same race measures the seconds since then, below the warning's
/// threshold (twice <c>ClusterMembershipOptions.LocalHealthDegradationMonitoringPeriod</c>, 20 s).
/// Orleans keeps absent timestamps as null elsewhere, so no code reads 0 as "long ago".
/// </remarks>
internal sealed class MembershipClock : TimeProvider
{
    private readonly long _origin = Stopwatch.GetTimestamp();

    public override long GetTimestamp() => Stopwatch.GetTimestamp() - _origin;
}
