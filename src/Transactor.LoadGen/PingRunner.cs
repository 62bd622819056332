using System.Diagnostics;
using HdrHistogram;

namespace Transactor.LoadGen;

/// <summary>
/// The HTTP ceiling of a machine: many clients send the lightest request the API serves
/// (<c>GET /alive</c>, no ledger work) in a closed loop. Run beside a transfer run with the same
/// clients, it tells how much of the transfers' cost is HTTP and the client itself.
/// </summary>
public static class PingRunner
{
    public const string Path = "/alive";

    public static async Task<PingSummary> RunAsync(HttpClient http, int clients, TimeSpan duration, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentOutOfRangeException.ThrowIfLessThan(clients, 1);
        var histogram = new LongConcurrentHistogram(1, Stopwatch.Frequency * 60, 3);
        long failed = 0;
        var started = Stopwatch.GetTimestamp();
        var end = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            while (Stopwatch.GetTimestamp() < end && !cancellation.IsCancellationRequested)
            {
                var sent = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await http.GetAsync(Path, cancellation);
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref failed);
                        continue;
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref failed);
                    continue;
                }

                histogram.RecordValue(Math.Clamp(Stopwatch.GetTimestamp() - sent, 1, Stopwatch.Frequency * 60));
            }
        }, cancellation)).ToArray();
        await Task.WhenAll(workers);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        double Ms(long ticks) => Math.Round(ticks * 1000.0 / Stopwatch.Frequency, 3);
        var count = histogram.TotalCount;
        return new PingSummary(
            clients,
            Math.Round(elapsed, 3),
            count,
            failed,
            elapsed == 0 ? 0 : Math.Round(count / elapsed, 1),
            count == 0 ? 0 : Ms(histogram.GetValueAtPercentile(50)),
            count == 0 ? 0 : Ms(histogram.GetValueAtPercentile(99)));
    }
}

/// <summary>The outcome of a <see cref="PingRunner"/> run.</summary>
public sealed record PingSummary(int Clients, double ElapsedSeconds, long Requests, long Failed, double RequestsPerSecond, double P50LatencyMs, double P99LatencyMs)
{
    public override string ToString() =>
        $"ping: {Requests:N0} GET {PingRunner.Path} in {ElapsedSeconds:N1} s ({RequestsPerSecond:N0}/s) from {Clients} clients, p50 {P50LatencyMs:N2} ms, p99 {P99LatencyMs:N2} ms, failed {Failed:N0}";
}
