namespace Transactor.Api.Events;

/// <summary>
/// Keeps this API process subscribed to the ledger's events: registers <see cref="TransferEventLog"/>
/// as a grain observer and subscribes it at the hub every <see cref="LedgerEvents.RenewEvery"/>
/// (every second until the first subscription succeeds), and unsubscribes on stop.
/// </summary>
public sealed partial class LedgerEventReceiver(IClusterClient client, TransferEventLog log, ILogger<LedgerEventReceiver> logger) : BackgroundService
{
    private static readonly TimeSpan RetryEvery = TimeSpan.FromSeconds(1);

    private ILedgerEventObserver? _reference;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var subscribed = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // The observer object must stay referenced: the log is a singleton, and so is this service.
                _reference ??= client.CreateObjectReference<ILedgerEventObserver>(log);
                await client.Hub().Subscribe(_reference).WaitAsync(LedgerEvents.RenewEvery, stoppingToken);
                subscribed = true;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // Whatever the cluster answers, the API serves on; the events resume with the next subscription.
                LogSubscribeFailed(logger, ex);
                subscribed = false;
            }

            try
            {
                await Task.Delay(subscribed ? LedgerEvents.RenewEvery : RetryEvery, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_reference is not null)
        {
            try
            {
                await client.Hub().Unsubscribe(_reference).WaitAsync(TimeSpan.FromSeconds(2), cancellationToken);
            }
            catch (Exception ex)
            {
                // The subscription lapses by itself.
                LogSubscribeFailed(logger, ex);
            }

            try
            {
                client.DeleteObjectReference<ILedgerEventObserver>(_reference);
            }
            catch (Exception ex)
            {
                // The client stopped first: the reference is gone with it.
                LogSubscribeFailed(logger, ex);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Subscribing to the ledger's events failed; trying again")]
    private static partial void LogSubscribeFailed(ILogger logger, Exception exception);
}
