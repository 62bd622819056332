using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Transactor.LoadGen;

internal static class LoadReport
{
    public static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    public static IRenderable Render(LoadStats stats, TimeSpan elapsed)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumns("transfers", "rate/s", "in flight", "committed", "p99 ms", "errors");
        table.AddRow(
            stats.Transfers.ToString("N0", CultureInfo.InvariantCulture),
            Rate(stats.Transfers, elapsed),
            stats.InFlight.ToString(CultureInfo.InvariantCulture),
            stats.Committed.ToString("N0", CultureInfo.InvariantCulture),
            stats.P99Ms().ToString("N1", CultureInfo.InvariantCulture),
            Markup.Escape(Errors(stats)));
        return table;
    }

    public static string Line(LoadStats stats, TimeSpan elapsed) =>
        $"[{elapsed.TotalSeconds,6:N1}s] transfers {stats.Transfers:N0}  rate {Rate(stats.Transfers, elapsed)}/s  in flight {stats.InFlight}  committed {stats.Committed:N0}  p99 {stats.P99Ms():N1} ms  errors {Errors(stats)}";

    public static void PrintSummary(Summary s)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("metric", "value");
        void Row(string name, string value) => table.AddRow(name, Markup.Escape(value));
        Row("transfers", $"{s.Transfers:N0} in {s.ElapsedSeconds:N1} s ({s.ThroughputPerSecond:N0}/s, committed {s.CommittedPerSecond:N0}/s)");
        Row("committed", $"{s.Committed:N0} ({s.SuccessPercent:N2} %)");
        Row("rejected", s.RejectedByReason.Count == 0 ? "none" : string.Join(", ", s.RejectedByReason.Select(r => $"{r.Key} {r.Value:N0}")));
        Row("rate limited", $"{s.RateLimitedResponses:N0} responses ({s.RateLimitedPercent:N2} % of attempts)");
        Row("retries", $"{s.Retries:N0}; duplicates prevented {s.DuplicatesPrevented:N0}; gave up {s.GaveUp:N0}");
        Row("errors", s.ErrorsByKind.Count == 0 ? "none" : string.Join(", ", s.ErrorsByKind.Select(e => $"{e.Key} {e.Value:N0}")));
        Row("circuit breaker", s.BreakerOpenings == 0 ? "never opened" : $"opened {s.BreakerOpenings:N0} times, open {s.BreakerOpenSeconds:N1} s in all, closed again {s.BreakerClosings:N0} times");
        if (s.OpenLoop)
        {
            Row("open loop", $"peak {s.PeakInFlight:N0} in flight (cap {s.MaxInFlight:N0}); dropped by the generator at the cap {s.DroppedByGenerator:N0}");
        }

        Row("latency ms", $"avg {s.AvgLatencyMs:N2}  p50 {s.P50LatencyMs:N2}  p90 {s.P90LatencyMs:N2}  p99 {s.P99LatencyMs:N2}  max {s.MaxLatencyMs:N2}");
        Row("answered ms", $"p50 {s.AnsweredP50LatencyMs:N2}  p99 {s.AnsweredP99LatencyMs:N2}  (the final request alone, without waiting or retries)");
        Row("books", s.BooksBalanced ? "balanced: money conserved, none negative, every commit visible" : "NOT BALANCED: " + string.Join("; ", s.CheckFailures));
        AnsiConsole.Write(table);
    }

    private static string Rate(long count, TimeSpan elapsed) =>
        elapsed.TotalSeconds <= 0 ? "0" : (count / elapsed.TotalSeconds).ToString("N0", CultureInfo.InvariantCulture);

    private static string Errors(LoadStats stats) =>
        stats.Errors.IsEmpty ? "none" : string.Join(" ", stats.Errors.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}:{e.Value}"));
}
