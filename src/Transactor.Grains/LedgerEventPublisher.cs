using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Transactor.Grains;

/// <summary>
/// Sends the movements this silo's coordinators end to every event receiver (API processes), in
/// batches, with the silo's load. A coordinator only offers the movement to a
/// bounded buffer (<see cref="BufferCapacity"/>; when full the oldest is dropped and counted), so
/// publishing never waits and never slows a movement; with no receiver nothing is buffered.
/// A loop drains the buffer every <see cref="SendEvery"/> and sends each receiver one one-way call
/// per batch of at most <see cref="MaxBatch"/>. See docs/events.md.
/// </summary>
public sealed partial class LedgerEventPublisher : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    /// <summary>Ended movements waiting to be sent; beyond this the oldest are dropped.</summary>
    public const int BufferCapacity = 20_000;

    /// <summary>The most movements in one call to a receiver.</summary>
    public const int MaxBatch = 2_000;

    /// <summary>The most batches sent per tick: the rest waits for the next tick (and the buffer's bound applies).</summary>
    public const int MaxBatchesPerTick = 10;

    /// <summary>How often the buffer is sent; a batch with the load goes out at least every <see cref="LoadEvery"/> even when nothing ended.</summary>
    public static readonly TimeSpan SendEvery = TimeSpan.FromMilliseconds(100);

    /// <summary>How often the load is sent when no movement ends.</summary>
    public static readonly TimeSpan LoadEvery = TimeSpan.FromSeconds(1);

    private readonly Channel<MovementEvent> _buffer;
    private readonly IGrainFactory _grains;
    private readonly TransferAdmission _admission;
    private readonly ChaosMonitor? _chaos;
    private readonly TimeProvider _time;
    private readonly ILogger<LedgerEventPublisher> _logger;
    private readonly string _silo;
    private readonly int _queueLimit;
    private readonly CancellationTokenSource _stopping = new();
    private volatile ILedgerEventObserver[] _receivers = [];
    private long _committed;
    private long _rejected;
    private long _refused;
    private long _dropped;
    private Task _loop = Task.CompletedTask;

    /// <param name="chaos">Chaos mode's monitor, registered only when chaos mode is configured: the load then says so.</param>
    public LedgerEventPublisher(IGrainFactory grains, TransferAdmission admission, IOptions<TransferOptions> options, ILocalSiloDetails silo, TimeProvider time, ILogger<LedgerEventPublisher> logger, ChaosMonitor? chaos = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(silo);
        _grains = grains;
        _admission = admission;
        _chaos = chaos;
        _time = time;
        _logger = logger;
        _silo = silo.SiloAddress.ToString();
        _queueLimit = options.Value.MaxQueuedTransfers;
        _buffer = Channel.CreateBounded<MovementEvent>(
            new BoundedChannelOptions(BufferCapacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            dropped =>
            {
                Interlocked.Increment(ref _dropped);
                Count(dropped.Status);
            });
    }

    /// <summary>
    /// Offers an ended movement for sending, and counts it. Never waits. While someone listens, it is
    /// counted when the loop takes it from the buffer to send it (or when the buffer drops it), so the
    /// load a batch carries counts exactly the movements sent up to that batch: an API that drops the
    /// second end of a movement (two drivers completed it) takes it off the same silo's count, and the
    /// metrics stream counts each movement once (docs/events.md).
    /// </summary>
    public void Ended(MovementEvent movement)
    {
        ArgumentNullException.ThrowIfNull(movement);
        if (_receivers.Length == 0 || !_buffer.Writer.TryWrite(movement))
        {
            Count(movement.Status);
        }
    }

    private void Count(TransferStatus status) =>
        Interlocked.Increment(ref status == TransferStatus.Committed ? ref _committed : ref _rejected);

    /// <summary>
    /// Counts a movement that ended in <paramref name="status"/>, timed from <paramref name="startedAt"/>,
    /// and offers its event for sending: the event is made only when some receiver listens. Never waits.
    /// </summary>
    internal void Ended(TransferRequest request, TransferStatus status, RejectionReason reason, long startedAt, AccountSnapshot? debit, AccountSnapshot? credit)
    {
        if (_receivers.Length > 0)
        {
            Ended(Event(request, status, reason, startedAt, debit, credit));
        }
        else
        {
            Count(status);
        }
    }

    /// <summary>Counts a movement refused because the admission queue was full.</summary>
    public void Refused() => Interlocked.Increment(ref _refused);

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(
            nameof(LedgerEventPublisher),
            ServiceLifecycleStage.Active,
            _ =>
            {
                _loop = Task.Run(() => Run(_stopping.Token), CancellationToken.None);
                return Task.CompletedTask;
            },
            async _ =>
            {
                await _stopping.CancelAsync();
                await _loop;
            });

    private SiloLoad Load() => new(
        Interlocked.Read(ref _committed),
        Interlocked.Read(ref _rejected),
        Interlocked.Read(ref _refused),
        _admission.InFlight,
        _admission.Queued,
        _admission.Places,
        _queueLimit,
        _time.GetUtcNow(),
        _chaos is { Active: true } chaos ? chaos.InjectedTotal : null,
        _chaos?.Armed() == true);

    private async Task Run(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(SendEvery, _time);
        var refreshedAt = long.MinValue;
        var loadSentAt = long.MinValue;
        var batch = new List<MovementEvent>(MaxBatch);
        var sequence = 0L;
        try
        {
            while (await timer.WaitForNextTickAsync(stopping))
            {
                if (refreshedAt == long.MinValue || _time.GetElapsedTime(refreshedAt) >= LedgerEvents.RefreshEvery)
                {
                    refreshedAt = _time.GetTimestamp();
                    await RefreshReceivers();
                }

                var receivers = _receivers;
                var batches = 0;
                do
                {
                    batch.Clear();
                    while (batch.Count < MaxBatch && _buffer.Reader.TryRead(out var movement))
                    {
                        batch.Add(movement);
                        Count(movement.Status);
                    }

                    if (receivers.Length == 0 || (batch.Count == 0 && loadSentAt != long.MinValue && _time.GetElapsedTime(loadSentAt) < LoadEvery))
                    {
                        break;
                    }

                    loadSentAt = _time.GetTimestamp();
                    // Numbered here, by the one reader: what every receiver gets carries the same numbers.
                    var sent = new LedgerEventBatch(_silo, batch.ToArray(), Load(), Interlocked.Read(ref _dropped), sequence + 1);
                    sequence += batch.Count;
                    foreach (var receiver in receivers)
                    {
                        Send(receiver, sent);
                    }
                }
                while (batch.Count == MaxBatch && ++batches < MaxBatchesPerTick);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // The silo stops.
        }
    }

    private void Send(ILedgerEventObserver receiver, LedgerEventBatch batch)
    {
        try
        {
            // One-way: the call is queued and the loop goes on; a receiver that is gone lapses at the hub.
            receiver.OnEvents(batch).Ignore();
        }
        catch (Exception ex)
        {
            LogSendFailed(_logger, ex);
        }
    }

    private async Task RefreshReceivers()
    {
        try
        {
            _receivers = [.. await _grains.Hub().Receivers().WaitAsync(LedgerEvents.RefreshEvery)];
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Keep the receivers known so far: the hub may be moving to another silo.
            LogRefreshFailed(_logger, ex);
        }
    }

    public void Dispose() => _stopping.Dispose();

    /// <summary>The event of a movement that ended in <paramref name="status"/>, timed from <paramref name="startedAt"/> (a <see cref="TimeProvider"/> timestamp).</summary>
    internal MovementEvent Event(TransferRequest request, TransferStatus status, RejectionReason reason, long startedAt, AccountSnapshot? debit, AccountSnapshot? credit) => new(
        request.TransferId,
        request.Kind,
        request.DebitAccountId,
        request.CreditAccountId,
        request.AmountMinor,
        request.Currency ?? debit?.Currency ?? credit?.Currency,
        status,
        reason == RejectionReason.None ? null : reason.ToCode(),
        Math.Round(_time.GetElapsedTime(startedAt).TotalMilliseconds, 3),
        Activity.Current is { } activity ? activity.TraceId.ToHexString() : null,
        _time.GetUtcNow(),
        debit?.AvailableMinor,
        debit?.Version ?? 0,
        credit?.AvailableMinor,
        credit?.Version ?? 0);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Sending ledger events to a receiver failed")]
    private static partial void LogSendFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Reading the ledger's event receivers failed; the last known ones are kept")]
    private static partial void LogRefreshFailed(ILogger logger, Exception exception);
}
