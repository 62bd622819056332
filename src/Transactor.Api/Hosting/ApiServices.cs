using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Transactor.Api.Events;
using Transactor.Api.Http;
using Transactor.Api.Runs;
using Transactor.Api.Metrics;
using Transactor.Persistence;

namespace Transactor.Api.Hosting;

public static partial class ApiServices
{
    /// <summary>JSON (snake_case), problem details, OpenAPI, health checks, rate limits and metrics.</summary>
    public static WebApplicationBuilder AddApiServices(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            json.SerializerOptions.DictionaryKeyPolicy = null;
            json.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
        });
        services.AddProblemDetails();
        // The Orleans Dashboard's own routes are not part of the ledger's API.
        services.AddOpenApi(openApi => openApi.ShouldInclude = endpoint =>
            endpoint.RelativePath?.StartsWith("dashboard", StringComparison.OrdinalIgnoreCase) != true);
        services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), ["live"])
            .AddCheck<OrleansHealthCheck>("orleans", tags: ["ready"])
            .AddPostgresReadiness(builder.Configuration, "ready");
        services.AddLedgerRateLimits(builder.Configuration);
        services.AddSingleton<ApiMetrics>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<TransferEventLog>();
        services.AddSingleton<ClientStreams>();
        services.AddSingleton<MetricsFeed>();
        services.Configure<RunLimitOptions>(builder.Configuration.GetSection(RunLimitOptions.SectionName));
        services.AddSingleton<RunManager>();
        // Stopped before the cluster client (registered earlier), so that its runs can report that they stop.
        services.AddHostedService(sp => sp.GetRequiredService<RunManager>());
        services.AddSingleton<RunBoard>();
        services.AddHostedService(sp => sp.GetRequiredService<RunBoard>());
        services.AddHostedService<LedgerEventReceiver>();
        services.AddHostedService<LiveMetrics>();
        return builder;
    }

    /// <summary>
    /// A failure the API expects and answers with a status that tells the client what to do: 400
    /// (a malformed request), 429 (the ledger at capacity) or 503 (a silo or the ledger's answer
    /// missing; retry with the same key). Logged as one warning line, not as an error with its stack.
    /// </summary>
    internal static bool Expected(Exception? exception) =>
        exception is BadHttpRequestException or LedgerOverloadedException or TimeoutException or LedgerUnavailableException or OrleansMessageRejectionException;

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Method} {Path} answered {Status}: {ExceptionType}: {ExceptionMessage}")]
    private static partial void LogExpectedFailure(ILogger logger, string method, string path, int? status, string exceptionType, string exceptionMessage);

    /// <summary>
    /// Anything unexpected becomes a 500 problem without internals; a request the server could not
    /// read (for example a body over Kestrel's limit) keeps its 4xx status.
    /// </summary>
    public static WebApplication UseApiErrorHandling(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);

        // Every log record of a request that moves money carries the movement's id (its key), also
        // the error the exception handler logs: the scope is opened outside it.
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Transactor.Api");
        app.Use(async (context, next) =>
        {
            if (context.Request.Headers.TryGetValue(IdempotencyKey.HeaderName, out var keys) && keys is [{ Length: > 0 and <= IdempotencyKey.MaxLength } key])
            {
                using (logger.BeginScope(new TransferScope(key)))
                {
                    await next(context);
                }
            }
            else
            {
                await next(context);
            }
        });
        // The failures a client is told to retry (503, 429) or to fix (400) are expected: one warning
        // line each, with the exception's type and message, not an error with its stack, which
        // ASP.NET Core would write for every request during a silo's death or a database outage.
        // Anything else (500, a storage failure) keeps ASP.NET Core's error with the whole exception.
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            SuppressDiagnosticsCallback = handled => Expected(handled.Exception),
            ExceptionHandler = async context =>
            {
                var exception = context.Features.Get<IExceptionHandlerFeature>()?.Error;
                var result = exception switch
                {
                    BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => Problems.PayloadTooLarge(JsonBody.MaxBytes),
                    BadHttpRequestException bad => Problems.BadRequest("bad_request", bad.Message),
                    LedgerOverloadedException => Problems.TooManyRequests(context.Response),
                    TimeoutException => Problems.Create(StatusCodes.Status503ServiceUnavailable, "ledger_unavailable", "The ledger did not answer in time.",
                        "Retry with the same Idempotency-Key; the request is applied at most once."),
                    LedgerUnavailableException unavailable => Problems.Create(StatusCodes.Status503ServiceUnavailable, "ledger_unavailable", "The ledger cannot answer right now.",
                        $"{unavailable.Message} The request is applied at most once."),
                    // A silo that died with the call in flight (SiloUnavailableException, once it is
                    // declared dead), or one that cannot be connected to: its grains come back elsewhere.
                    OrleansMessageRejectionException => Problems.Create(StatusCodes.Status503ServiceUnavailable, "ledger_unavailable", "A silo of the ledger is unreachable.",
                        "A silo the request needed stopped answering; its part of the ledger moves to the other silos within seconds. Retry with the same Idempotency-Key; the request is applied at most once."),
                    _ when LedgerFailures.IsStorage(exception) => Problems.StorageUnavailable(context.Response),
                    _ => Problems.Create(StatusCodes.Status500InternalServerError, "internal_error", "An unexpected error occurred.",
                        "The error has been logged. Retry with the same Idempotency-Key; the request is applied at most once."),
                };
                if (exception is LedgerUnavailableException or TimeoutException or OrleansMessageRejectionException)
                {
                    // Transient: a shard reloading, or an answer that took too long. A retry soon is fine.
                    context.Response.Headers.RetryAfter = "1";
                }

                if (Expected(exception))
                {
                    LogExpectedFailure(logger, context.Request.Method, context.Request.Path, (result as IStatusCodeHttpResult)?.StatusCode, exception!.GetType().Name, exception.Message);
                }

                await result.ExecuteAsync(context);
            },
        });
        app.UseStatusCodePages(async status =>
        {
            var context = status.HttpContext;
            var code = context.Response.StatusCode;
            var result = code switch
            {
                StatusCodes.Status404NotFound => Problems.Create(code, "not_found", "No such endpoint.", $"Nothing is served at {context.Request.Method} {context.Request.Path}."),
                StatusCodes.Status415UnsupportedMediaType => Problems.UnsupportedMediaType(),
                StatusCodes.Status413PayloadTooLarge => Problems.PayloadTooLarge(JsonBody.MaxBytes),
                StatusCodes.Status405MethodNotAllowed => Problems.Create(code, "method_not_allowed", "Method not allowed.", $"{context.Request.Method} is not allowed on {context.Request.Path}."),
                _ => Problems.Create(code, "http_" + code, "The request failed.", $"Status {code}."),
            };
            await result.ExecuteAsync(context);
        });
        return app;
    }
}

/// <summary>A log scope with one attribute, <c>TransferId</c>, which OpenTelemetry exports with each record.</summary>
internal sealed class TransferScope(string transferId) : IReadOnlyList<KeyValuePair<string, object?>>
{
    public const string Name = "TransferId";

    public int Count => 1;

    public KeyValuePair<string, object?> this[int index] =>
        index == 0 ? new(Name, transferId) : throw new ArgumentOutOfRangeException(nameof(index));

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        yield return this[0];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => $"{Name}:{transferId}";
}
