using Microsoft.Extensions.Logging;

namespace Transactor.Grains;

/// <summary>
/// Message and storage faults (configuration section <c>Transactor:Chaos</c>), used by the fault
/// suite (scripts/chaos.sh, docs/reliability.md) and as the ledger's chaos mode (docs/overload.md).
/// Off unless a probability is set: then nothing is even registered.
/// </summary>
public sealed class ChaosOptions
{
    public const string SectionName = "Transactor:Chaos";

    /// <summary>Share of Transactor grain calls (0-1) that are delayed by up to <see cref="MaxDelay"/> (latency spikes).</summary>
    public double DelayProbability { get; set; }

    /// <summary>The longest delay; the suite sets it above the transfer lease.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>Share of Transactor grain calls (0-1) that are dropped: the caller gets a <see cref="TimeoutException"/>.</summary>
    public double DropProbability { get; set; }

    /// <summary>Share of writes of the ledger's grain storage (0-1) that fail before anything is stored.</summary>
    public double StorageWriteFailureProbability { get; set; }

    /// <summary>Share of reads of the ledger's grain storage (0-1) that fail.</summary>
    public double StorageReadFailureProbability { get; set; }

    /// <summary>Names of the silos that inject faults (Orleans' silo name); empty: every silo given this section.</summary>
    public List<string> Silos { get; set; } = [];

    /// <summary>
    /// When set, faults are injected only while this file exists, so that the runner can switch them
    /// on after the accounts are set up and off before it checks, without restarting the silo.
    /// </summary>
    public string? ArmedFile { get; set; }

    /// <summary>Seeds the faults' choices (the interleaving with other work is not reproducible).</summary>
    public int? Seed { get; set; }

    public bool Enabled => DelayProbability > 0 || DropProbability > 0 || StorageWriteFailureProbability > 0 || StorageReadFailureProbability > 0;

    public bool MessageFaults => DelayProbability > 0 || DropProbability > 0;

    public bool StorageFaults => StorageWriteFailureProbability > 0 || StorageReadFailureProbability > 0;

    /// <summary>A reason the options cannot be used, or null when they can.</summary>
    public string? Invalid() =>
        new[] { DelayProbability, DropProbability, StorageWriteFailureProbability, StorageReadFailureProbability }.Any(p => p is < 0 or > 1)
            ? "every probability must be between 0 and 1"
            : DelayProbability + DropProbability > 1 ? "DelayProbability + DropProbability must not exceed 1"
            : MaxDelay < TimeSpan.Zero ? "MaxDelay must not be negative"
            : null;
}

/// <summary>
/// Delays and drops calls to Transactor's grains on the receiving silo. A delay happens before the
/// grain runs (a late request) or after it ran (a late answer; on a non-reentrant grain such as an
/// account it holds the activation meanwhile, as a pause of that silo would). A drop is modelled as
/// a <see cref="TimeoutException"/>, which is what the caller of a lost message gets once its
/// response timeout passes, only sooner: thrown before the grain runs (the request was lost) or
/// after it ran (the answer was lost, though its effects happened).
/// </summary>
internal sealed partial class ChaosFaultFilter(ChaosOptions options, ChaosMonitor monitor, ILogger<ChaosFaultFilter> logger) : IIncomingGrainCallFilter
{
    private readonly Random _random = options.Seed is { } seed ? new Random(seed) : new Random();
    private readonly Lock _lock = new();

    public async Task Invoke(IIncomingGrainCallContext context)
    {
        // Only messages of the ledger's grain interfaces and reminder ticks: not Orleans' own
        // messages (membership, the dashboard), nor grain timers, which are not messages.
        if (!IsLedgerMessage(context) || !monitor.Armed())
        {
            await context.Invoke();
            return;
        }

        var (fault, after, delay) = Choose();
        if (fault == Fault.None)
        {
            await context.Invoke();
            return;
        }

        var call = $"{context.InterfaceName}.{context.MethodName} on {context.TargetId}";
        if (!after)
        {
            await Inject(fault, delay, call, "request");
        }

        await context.Invoke();
        if (after)
        {
            await Inject(fault, delay, call, "answer");
        }
    }

    private static bool IsLedgerMessage(IIncomingGrainCallContext context) =>
        context.InterfaceMethod?.DeclaringType is { } type && (type.Namespace == nameof(Transactor) || type == typeof(IRemindable));

    private async Task Inject(Fault fault, TimeSpan delay, string call, string part)
    {
        if (fault == Fault.Delay)
        {
            monitor.Injected(ChaosFaultKind.Delay);
            LogDelayed(logger, call, part, (long)delay.TotalMilliseconds);
            await Task.Delay(delay);
            return;
        }

        monitor.Injected(ChaosFaultKind.Drop);
        LogDropped(logger, call, part);
        throw new TimeoutException($"Chaos: the {part} of {call} was dropped.");
    }

    private (Fault Fault, bool After, TimeSpan Delay) Choose()
    {
        lock (_lock)
        {
            var roll = _random.NextDouble();
            var fault = roll < options.DropProbability ? Fault.Drop
                : roll < options.DropProbability + options.DelayProbability ? Fault.Delay
                : Fault.None;
            return fault == Fault.None ? (fault, false, TimeSpan.Zero) : (fault, _random.Next(2) == 1, options.MaxDelay * _random.NextDouble());
        }
    }

    private enum Fault
    {
        None,
        Delay,
        Drop,
    }

    // The fault suite's report counts these lines (src/Transactor.Chaos/ChaosRunner.cs): keep their wording.
    [LoggerMessage(Level = LogLevel.Warning, Message = "Chaos: delayed the {Part} of {Call} by {DelayMs} ms")]
    private static partial void LogDelayed(ILogger logger, string call, string part, long delayMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Chaos: dropped the {Part} of {Call}")]
    private static partial void LogDropped(ILogger logger, string call, string part);
}
