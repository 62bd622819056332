using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Transactor.Api.Http;

namespace Transactor.Api.Apis;

/// <summary>Settings of the debugging endpoints (configuration section <c>Transactor:Debug</c>). Everything is off by default.</summary>
public sealed class DebugOptions
{
    public const string SectionName = "Transactor:Debug";

    /// <summary>
    /// Serves <c>POST /debug/trace?seconds=N</c> to admin keys: an admin can then make this process
    /// record itself, which costs CPU and reveals code paths (docs/profiling.md).
    /// </summary>
    public bool TraceEnabled { get; set; }
}

/// <summary>
/// <c>POST /debug/trace?seconds=N</c>: records an EventPipe trace of this process (CPU samples,
/// the runtime's GC, exception and thread-pool events, as <c>dotnet-trace</c>'s default profile)
/// for N seconds and returns the <c>.nettrace</c> file, so that a deployed API can be profiled
/// without a shell on its machine. One trace at a time.
/// </summary>
public static partial class DebugApi
{
    public const int MaxTraceSeconds = 60;

    /// <summary>The runtime's keywords of <c>dotnet-trace</c>'s cpu-sampling profile (GC, loader, exceptions, thread pool, ...).</summary>
    private const long RuntimeKeywords = 0x14C14FCCBD;

    private static readonly SemaphoreSlim OneTrace = new(1, 1);

    public static IEndpointRouteBuilder MapDebugApi(this IEndpointRouteBuilder app, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(configuration);
        var options = configuration.GetSection(DebugOptions.SectionName).Get<DebugOptions>() ?? new DebugOptions();
        if (!options.TraceEnabled)
        {
            // Not mapped at all: a POST gets the API's 404 problem, and nothing reveals it exists.
            return app;
        }

        app.MapPost("/debug/trace", Trace)
            .RequireAuthorization(Security.Roles.AdminPolicy)
            .WithTags("Operations")
            .WithSummary($"Records an EventPipe trace of this process for 1-{MaxTraceSeconds} s and returns the .nettrace file (only when Transactor:Debug:TraceEnabled)");
        return app;
    }

    private static async Task<IResult> Trace(int? seconds, HttpContext context, ILoggerFactory loggers)
    {
        if (seconds is not { } duration || duration is < 1 or > MaxTraceSeconds)
        {
            return Problems.InvalidField("seconds", $"Give the query parameter seconds, from 1 to {MaxTraceSeconds}.");
        }

        if (!await OneTrace.WaitAsync(0, context.RequestAborted))
        {
            return Problems.Create(StatusCodes.Status409Conflict, "trace_in_progress", "A trace is already being recorded.", "One trace at a time; retry when it has ended.");
        }

        var logger = loggers.CreateLogger("Transactor.Api.Debug");
        var path = Path.Combine(Path.GetTempPath(), $"transactor-{Environment.ProcessId}-{Guid.NewGuid():N}.nettrace");
        try
        {
            LogTraceStarted(logger, duration, context.Connection.RemoteIpAddress?.ToString());
            var providers = new[]
            {
                new EventPipeProvider("Microsoft-DotNETCore-SampleProfiler", EventLevel.Informational),
                new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Informational, RuntimeKeywords),
            };
            var client = new DiagnosticsClient(Environment.ProcessId);
            using (var session = await client.StartEventPipeSessionAsync(providers, requestRundown: true, circularBufferMB: 256, context.RequestAborted))
            {
                await using var file = File.Create(path);
                var copy = session.EventStream.CopyToAsync(file, context.RequestAborted);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(duration), context.RequestAborted);
                }
                finally
                {
                    // Stopping ends the stream (after the rundown), which ends the copy.
                    await session.StopAsync(CancellationToken.None);
                    await copy;
                }
            }

            var bytes = new FileInfo(path).Length;
            LogTraceEnded(logger, bytes);
            var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 64 * 1024, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
            return TypedResults.File(stream, "application/octet-stream", $"transactor-{DateTime.UtcNow:yyyyMMdd-HHmmss}.nettrace");
        }
        catch (Exception ex) when (ex is DiagnosticsClientException or ServerNotAvailableException)
        {
            File.Delete(path);
            return Problems.Create(StatusCodes.Status503ServiceUnavailable, "trace_unavailable", "The runtime's diagnostics are not available.",
                $"EventPipe could not be started in this process ({ex.GetType().Name}); is DOTNET_EnableDiagnostics=0 set?");
        }
        finally
        {
            OneTrace.Release();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Recording an EventPipe trace of this process for {Seconds} s, asked by {Remote}")]
    private static partial void LogTraceStarted(ILogger logger, int seconds, string? remote);

    [LoggerMessage(Level = LogLevel.Information, Message = "EventPipe trace recorded: {Bytes} bytes")]
    private static partial void LogTraceEnded(ILogger logger, long bytes);
}
