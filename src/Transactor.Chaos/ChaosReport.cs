using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Transactor.Chaos;

/// <summary>Counts of the movements a run sent, by what the client heard and by where they ended.</summary>
public sealed record MovementCounts(
    int Invoked,
    int Attempts,
    int Acknowledged,
    int Failed,
    int Unknown,
    int Committed,
    int Rejected,
    int NotFound,
    int Pending,
    int Unresolved,
    IReadOnlyDictionary<string, int> InvokedByKind);

/// <summary>How many grain calls the silos' fault filter delayed and dropped (counted in their logs).</summary>
public sealed record MessageFaultCounts(int Delayed, int Dropped);

/// <summary>The JSON report of one run (scripts/chaos.sh, docs/reliability.md).</summary>
public sealed record ChaosReport(
    int Seed,
    double FaultPhaseMinutes,
    DateTimeOffset StartedAt,
    double WallSeconds,
    bool Passed,
    string Verdict,
    IReadOnlyList<PlannedFault> Schedule,
    IReadOnlyList<InjectedFault> Faults,
    MessageFaultCounts MessageFaults,
    IReadOnlyList<ClusterEvent> Events,
    MovementCounts Movements,
    int Reads,
    int CompleteReads,
    IReadOnlyList<FaultAvailability> Availability,
    IReadOnlyList<KindAvailability> AvailabilityByKind,
    IReadOnlyList<Violation> Violations,
    IReadOnlyList<string> Notes,
    string WorkDirectory,
    string? Error)
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>The one line a run prints last.</summary>
    public static string Line(int seed, double minutes, int faults, MessageFaultCounts messages, MovementCounts movements, int violations, string? error)
    {
        var verdict = error is not null ? "ERROR" : violations == 0 ? "PASS" : "FAIL";
        var line = string.Create(CultureInfo.InvariantCulture,
            $"chaos seed={seed} minutes={minutes:0.##}: {verdict}: {faults} faults, {messages.Delayed} delayed and {messages.Dropped} dropped messages; {movements.Invoked} movements: {movements.Acknowledged} acknowledged, {movements.Failed} failed, {movements.Unknown} unknown; {violations} violations");
        return error is null ? line : $"{line}; {error}";
    }

    /// <summary>One line per fault kind: the longest time with no committed movement, and the share of attempts that failed.</summary>
    public IEnumerable<string> AvailabilityLines() =>
        AvailabilityByKind.Select(k => string.Create(CultureInfo.InvariantCulture,
            $"availability {k.Kind}: {k.Faults} faults, longest time with no commit {k.LongestGapMs / 1000.0:F1} s, {k.Failed} of {k.Attempts} attempts failed ({k.FailedShare:P1})"));
}
