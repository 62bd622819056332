namespace Transactor.Api.Hosting;

/// <summary>
/// Ends the API's wait for ledger calls in flight when the Orleans client loses a gateway. The
/// client does not fail the calls it sent through a gateway whose silo died: they wait for the
/// client's response timeout (30 s) although no answer can come (Orleans breaks such calls inside
/// the cluster when a silo is declared dead, but not in a client). The API cannot tell which calls
/// went through the lost gateway, so it stops waiting for every call in flight at that moment and
/// answers 503 <c>ledger_unavailable</c>; a call through a live gateway goes on in the cluster, and
/// the client's retry with the same key gets its one outcome (docs/transfers.md). Liveness only.
/// </summary>
public sealed partial class GatewayLoss(ILogger<GatewayLoss> logger) : IClusterConnectionStatusObserver, IDisposable
{
    private CancellationTokenSource _current = new();

    /// <summary>Cancelled when a gateway is lost after this token was read.</summary>
    public CancellationToken Token => Volatile.Read(ref _current).Token;

    public void NotifyGatewayCountChanged(int currentNumberOfGateways, int previousNumberOfGateways, bool connectionRecovered)
    {
        if (currentNumberOfGateways < previousNumberOfGateways)
        {
            Lost(currentNumberOfGateways);
        }
    }

    public void NotifyClusterConnectionLost() => Lost(0);

    public void Dispose() => _current.Dispose();

    private void Lost(int gateways)
    {
        // Not disposed: requests that read its token may still register on it; nothing else holds resources.
        var lost = Interlocked.Exchange(ref _current, new CancellationTokenSource());
        LogGatewayLost(logger, gateways);
        lost.Cancel();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The ledger client lost a gateway ({Gateways} left); ledger calls in flight answer 503 ledger_unavailable, and a retry with the same key gets their outcome")]
    private static partial void LogGatewayLost(ILogger logger, int gateways);
}
