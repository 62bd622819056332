namespace Transactor.Silo;

/// <summary>
/// Message faults for the fault suite (scripts/chaos.sh, docs/reliability.md). Configuration
/// section <c>Transactor:Chaos</c>; the filter is not even registered unless a probability is set.
/// </summary>
public sealed class ChaosOptions
{
    public const string SectionName = "Transactor:Chaos";

    /// <summary>Share of Transactor grain calls (0-1) that are delayed by up to <see cref="MaxDelay"/>.</summary>
    public double DelayProbability { get; set; }

    /// <summary>The longest delay; the suite sets it above the transfer lease.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>Share of Transactor grain calls (0-1) that are dropped: the caller gets a <see cref="TimeoutException"/>.</summary>
    public double DropProbability { get; set; }

    /// <summary>
    /// When set, faults are injected only while this file exists, so that the runner can switch them
    /// on after the accounts are set up and off before it checks, without restarting the silo.
    /// </summary>
    public string? ArmedFile { get; set; }

    /// <summary>Seeds the filter's choices (the interleaving with other processes is not reproducible).</summary>
    public int? Seed { get; set; }

    public bool Enabled => DelayProbability > 0 || DropProbability > 0;
}

/// <summary>
/// Delays and drops calls to Transactor's grains on the receiving silo. A delay happens before the
/// grain runs (a late request) or after it ran (a late answer; on a non-reentrant grain such as an
/// account it holds the activation meanwhile, as a pause of that silo would). A drop is modelled as
/// a <see cref="TimeoutException"/>, which is what the caller of a lost message gets once its
/// response timeout passes, only sooner: thrown before the grain runs (the request was lost) or
/// after it ran (the answer was lost, though its effects happened).
/// </summary>
internal sealed partial class ChaosFaultFilter(ChaosOptions options, ILogger<ChaosFaultFilter> logger) : IIncomingGrainCallFilter
{
    /// <summary>How long a look at <see cref="ChaosOptions.ArmedFile"/> is trusted: a file check on every call would cost more than the call.</summary>
    private static readonly TimeSpan ArmedCheckInterval = TimeSpan.FromMilliseconds(250);

    private readonly Random _random = options.Seed is { } seed ? new Random(seed) : new Random();
    private readonly Lock _lock = new();
    private long _nextArmedCheckMs;
    private bool _armed;

    public async Task Invoke(IIncomingGrainCallContext context)
    {
        // Only messages of the ledger's grain interfaces and reminder ticks: not Orleans' own
        // messages (membership, the dashboard), nor grain timers, which are not messages.
        if (!IsLedgerMessage(context) || !Armed())
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
            LogDelayed(logger, call, part, (long)delay.TotalMilliseconds);
            await Task.Delay(delay);
            return;
        }

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

    private bool Armed()
    {
        if (options.ArmedFile is not { Length: > 0 } file)
        {
            return true;
        }

        var now = Environment.TickCount64;
        lock (_lock)
        {
            if (now >= _nextArmedCheckMs)
            {
                _armed = File.Exists(file);
                _nextArmedCheckMs = now + (long)ArmedCheckInterval.TotalMilliseconds;
            }

            return _armed;
        }
    }

    private enum Fault
    {
        None,
        Delay,
        Drop,
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Chaos: delayed the {Part} of {Call} by {DelayMs} ms")]
    private static partial void LogDelayed(ILogger logger, string call, string part, long delayMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Chaos: dropped the {Part} of {Call}")]
    private static partial void LogDropped(ILogger logger, string call, string part);
}

internal static class ChaosFaults
{
    /// <summary>Adds <see cref="ChaosFaultFilter"/> when <see cref="ChaosOptions.SectionName"/> sets a probability; otherwise nothing.</summary>
    public static ISiloBuilder AddChaosFaultsIfConfigured(this ISiloBuilder silo, IConfiguration configuration)
    {
        var options = configuration.GetSection(ChaosOptions.SectionName).Get<ChaosOptions>();
        if (options is not { Enabled: true })
        {
            return silo;
        }

        silo.Services.AddSingleton(options);
        silo.AddIncomingGrainCallFilter<ChaosFaultFilter>();
        return silo;
    }
}
