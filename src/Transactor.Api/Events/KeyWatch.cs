using Microsoft.Extensions.Options;
using Transactor.Api.Security;

namespace Transactor.Api.Events;

/// <summary>
/// Ends a long-lived stream when the key that opened it is revoked: every
/// <see cref="AuthOptions.KeyCacheTime"/> it asks the <see cref="ApiKeyStore"/> whether the key is
/// still active (what a new request would be told), and cancels <see cref="Token"/> when it is not.
/// So a revoke stops a stream within the time it takes to refuse new requests. When the key cannot be
/// read (the cluster is unreachable), the stream goes on: a check that cannot be made does not end it.
/// </summary>
internal sealed partial class KeyWatch : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private int _revoked;

    private KeyWatch(CancellationToken aborted) => _stop = CancellationTokenSource.CreateLinkedTokenSource(aborted);

    /// <summary>Cancelled when the request ends or the key is revoked.</summary>
    public CancellationToken Token => _stop.Token;

    /// <summary>True once the key was found revoked (or gone).</summary>
    public bool Revoked => Volatile.Read(ref _revoked) == 1;

    /// <summary>Watches the key of <paramref name="context"/>'s caller for as long as the request lasts.</summary>
    public static KeyWatch Start(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var watch = new KeyWatch(context.RequestAborted);
        context.Response.RegisterForDispose(watch);
        if (context.User.KeyId() is { } keyId)
        {
            var services = context.RequestServices;
            var store = services.GetRequiredService<ApiKeyStore>();
            var interval = services.GetRequiredService<IOptions<AuthOptions>>().Value.KeyCacheTime;
            var logger = services.GetRequiredService<ILogger<KeyWatch>>();
            using (ExecutionContext.SuppressFlow())
            {
                _ = Task.Run(() => watch.Watch(store, keyId, interval, logger));
            }
        }

        return watch;
    }

    private async Task Watch(ApiKeyStore store, string keyId, TimeSpan interval, ILogger logger)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            var token = Token;
            while (await timer.WaitForNextTickAsync(token))
            {
                bool active;
                try
                {
                    active = await store.IsActive(keyId);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogCheckFailed(logger, keyId, ex);
                    continue;
                }

                if (!active)
                {
                    Volatile.Write(ref _revoked, 1);
                    _stop.Cancel();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The request ended.
        }
        catch (ObjectDisposedException)
        {
            // The request ended while the key was being read.
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Checking whether key {KeyId} of an event stream is still active failed; the stream goes on")]
    private static partial void LogCheckFailed(ILogger logger, string keyId, Exception exception);
}
