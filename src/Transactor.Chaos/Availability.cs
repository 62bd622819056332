namespace Transactor.Chaos;

/// <summary>
/// How one fault looked to the clients: from its start to the next fault's start (or the end of
/// the load), the longest time in which no movement was acknowledged committed, and how many of the
/// attempts sent in that window failed for want of service.
/// </summary>
/// <param name="LongestGapMs">The longest time in the window with no 201, counted from the fault's start.</param>
/// <param name="FirstCommitAfterMs">From the fault's start to the first 201 after the fault ended; null if none came in the window.</param>
/// <param name="Failed">Attempts that got no definite answer, or a 429 or 5xx: a rejection such as <c>insufficient_funds</c> is service.</param>
public sealed record FaultAvailability(FaultKind Kind, string Target, long StartedAtMs, long WindowEndMs, long LongestGapMs, long? FirstCommitAfterMs, int Attempts, int Failed);

/// <summary>Every fault of one kind: the worst gap, and the share of their attempts that failed.</summary>
public sealed record KindAvailability(FaultKind Kind, int Faults, long LongestGapMs, int Attempts, int Failed)
{
    public double FailedShare => Attempts == 0 ? 0 : (double)Failed / Attempts;
}

public static class Availability
{
    /// <summary>
    /// Each fault of <paramref name="faults"/>, judged over the attempts of <paramref name="movements"/>;
    /// the last fault's window ends at <paramref name="loadEndedAtMs"/>.
    /// </summary>
    public static IReadOnlyList<FaultAvailability> Of(IReadOnlyList<InjectedFault> faults, IEnumerable<Movement> movements, long loadEndedAtMs)
    {
        ArgumentNullException.ThrowIfNull(faults);
        ArgumentNullException.ThrowIfNull(movements);
        var attempts = movements.SelectMany(m => m.Attempts).ToList();
        var commits = attempts.Where(a => a.Outcome == Outcome.Ok).Select(a => a.CompletedAtMs).Order().ToList();
        var ordered = faults.OrderBy(f => f.StartedAtMs).ToList();
        var result = new List<FaultAvailability>(ordered.Count);
        for (var i = 0; i < ordered.Count; i++)
        {
            var fault = ordered[i];
            var end = Math.Max(fault.EndedAtMs, i + 1 < ordered.Count ? ordered[i + 1].StartedAtMs : loadEndedAtMs);
            var inWindow = attempts.Where(a => a.InvokedAtMs >= fault.StartedAtMs && a.InvokedAtMs < end).ToList();
            result.Add(new FaultAvailability(
                fault.Kind,
                fault.Target,
                fault.StartedAtMs,
                end,
                LongestGap(commits, fault.StartedAtMs, end),
                commits.Where(c => c >= fault.EndedAtMs && c < end).Select(c => (long?)(c - fault.StartedAtMs)).FirstOrDefault(),
                inWindow.Count,
                inWindow.Count(IsFailure)));
        }

        return result;
    }

    /// <summary>The faults of each kind together, in the order of <see cref="FaultKind"/>.</summary>
    public static IReadOnlyList<KindAvailability> ByKind(IEnumerable<FaultAvailability> faults) =>
        [.. faults.GroupBy(f => f.Kind).OrderBy(g => g.Key).Select(g => new KindAvailability(g.Key, g.Count(), g.Max(f => f.LongestGapMs), g.Sum(f => f.Attempts), g.Sum(f => f.Failed)))];

    /// <summary>The longest stretch of [<paramref name="from"/>, <paramref name="to"/>) with no time of <paramref name="sortedTimes"/> in it.</summary>
    public static long LongestGap(IReadOnlyList<long> sortedTimes, long from, long to)
    {
        ArgumentNullException.ThrowIfNull(sortedTimes);
        var longest = 0L;
        var previous = from;
        foreach (var time in sortedTimes)
        {
            if (time < from)
            {
                continue;
            }

            if (time >= to)
            {
                break;
            }

            longest = Math.Max(longest, time - previous);
            previous = time;
        }

        return Math.Max(longest, to - previous);
    }

    /// <summary>No service: no answer in time, a connection error, 5xx, 429 or 202 pending.</summary>
    private static bool IsFailure(Attempt attempt) =>
        attempt.Outcome == Outcome.Unknown || attempt.HttpStatus == 429;
}
