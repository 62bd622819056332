using Orleans.Configuration;

namespace Transactor.Grains;

/// <summary>
/// How fast the silos declare a dead silo dead (configuration section <c>Transactor:FailureDetection</c>),
/// applied to Orleans' <see cref="ClusterMembershipOptions"/>. Liveness only: a silo declared dead
/// while it still runs (a long pause) stops itself, and any movement it still drives is fenced out by
/// its lease's epoch (docs/transfers.md). docs/reliability.md, "Failure detection", weighs the
/// defaults against false suspicions.
/// </summary>
public sealed class FailureDetectionOptions
{
    public const string SectionName = "Transactor:FailureDetection";

    /// <summary>
    /// How often a silo probes each other silo, and how long it waits for an answer (Orleans' default:
    /// 5 s). A dead silo's probes fail at once (its port refuses connections), so this sets the pace.
    /// </summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Probes in a row that fail before a silo votes its target dead (Orleans' default: 3).</summary>
    public int NumMissedProbesLimit { get; set; } = 3;

    /// <summary>
    /// Votes that declare a silo dead (Orleans' default: 2). With three silos and one dead, both
    /// survivors must vote; Orleans needs fewer when fewer silos are active.
    /// </summary>
    public int NumVotesForDeathDeclaration { get; set; } = 2;

    /// <summary>
    /// How long a vote counts (Orleans' default: 2 minutes). Short, so that two suspicions far apart
    /// (two brief stalls a minute apart) do not add up to a death.
    /// </summary>
    public TimeSpan DeathVoteExpirationTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How often a silo writes "I am alive" into the membership table (Orleans' default: 30 s). A silo
    /// that misses three of them is not waited for by a silo that joins, which is what lets a whole
    /// cluster killed at once start again without waiting on its own dead entries: 6 s after the
    /// kill, not 15 s as with 5 s here (measured in docs/reliability.md).
    /// </summary>
    public TimeSpan IAmAliveTablePublishTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How often a silo reads the membership table besides the changes it hears of (Orleans' default:
    /// 60 s). A restarted silo marks its dead predecessor (same address) dead when it reads the table;
    /// when that write loses a race with another silo's, it tries again at the next read.
    /// </summary>
    public TimeSpan TableRefreshTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// How long a silo may take to place a grain, retries included (Orleans' default: 30 s), after
    /// which the call that needed it fails and its caller retries. Placing a grain takes milliseconds;
    /// what took 30 s was a placement on a silo that restarted together with its peers, while its
    /// grain directory still counted their dead predecessors (docs/reliability.md, "Full restart"):
    /// every request behind it waited out the 30 s. Liveness only: a failed call is retried with its
    /// idempotency key.
    /// </summary>
    public TimeSpan PlacementTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a grain call waits for its answer on the silos: Orleans' 30 s unless configured. A
    /// lower value bounds a call that nothing will ever answer (a message lost with a connection
    /// Orleans closed under it, docs/reliability.md, "Full restart"), but also fails calls that wait
    /// on storage (a recovery shard's <c>Begin</c>, an account's <c>Prepare</c>, queued behind a slow
    /// or recovering database), and a movement whose <c>Begin</c> timed out answers pending until its
    /// lease runs out. Lower it only where the database answers well within it. The calls that wait
    /// on purpose (up to <see cref="TransferOptions.WaitTimeout"/> for a concurrent driver) keep 30 s
    /// whatever this says (<see cref="CallTimeouts.Patient"/> on the grain interface), hence at most
    /// <see cref="MaxResponseTimeout"/>. Liveness only: a timed-out call may still take effect, and
    /// every step of a movement survives a late answer (docs/transfers.md).
    /// </summary>
    public TimeSpan ResponseTimeout { get; set; } = MaxResponseTimeout;

    /// <summary>
    /// How long a grain call from the API's Orleans client waits for its answer (Orleans' default:
    /// 30 s). The calls it bounds are the API's reads (an account, a movement's result, a page of
    /// history, an owner check before a write), which answer 503 with <c>Retry-After</c> when they
    /// time out and change nothing, and signed requests' nonce checks (a retry is signed anew). The
    /// coordinator's calls and every call of the API that writes to storage keep 30 s whatever this
    /// says (<see cref="CallTimeouts.Patient"/>). The client's own requests to its gateway are bounded by it too:
    /// its first request for the cluster's manifest, sent to a silo that restarted that second, went
    /// unanswered, and the API served nothing until it timed out (docs/reliability.md, "Full
    /// restart"). Liveness only.
    /// </summary>
    public TimeSpan ClientResponseTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest response timeout: that of the calls that wait on purpose (<see cref="CallTimeouts.Patient"/>).</summary>
    public static readonly TimeSpan MaxResponseTimeout = TimeSpan.Parse(CallTimeouts.Patient, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The shortest response timeout.</summary>
    public static readonly TimeSpan MinResponseTimeout = TimeSpan.FromSeconds(1);

    /// <summary>Whether <see cref="ResponseTimeout"/> is within its bounds; checked at start on the silos.</summary>
    public bool ResponseTimeoutInRange => InRange(ResponseTimeout);

    /// <summary>Whether <see cref="ClientResponseTimeout"/> is within its bounds; checked at start in the API's client.</summary>
    public bool ClientResponseTimeoutInRange => InRange(ClientResponseTimeout);

    private static bool InRange(TimeSpan timeout) => timeout >= MinResponseTimeout && timeout <= MaxResponseTimeout;

    /// <summary>Applies these settings to Orleans' membership options.</summary>
    public void ApplyTo(ClusterMembershipOptions membership)
    {
        ArgumentNullException.ThrowIfNull(membership);
        membership.ProbeTimeout = ProbeTimeout;
        membership.NumMissedProbesLimit = NumMissedProbesLimit;
        membership.NumVotesForDeathDeclaration = NumVotesForDeathDeclaration;
        membership.DeathVoteExpirationTimeout = DeathVoteExpirationTimeout;
        membership.IAmAliveTablePublishTimeout = IAmAliveTablePublishTimeout;
        membership.TableRefreshTimeout = TableRefreshTimeout;
    }
}
