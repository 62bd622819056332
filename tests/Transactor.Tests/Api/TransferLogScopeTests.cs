using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Transactor.Tests.Api;

/// <summary>The log records of a request that moves money carry its id, as the Aspire dashboard's structured logs show it.</summary>
[Collection(ApiTestGroup.Name)]
public sealed class TransferLogScopeTests(ApiFixture fixture)
{
    [Fact]
    public async Task The_error_logged_for_a_failed_transfer_carries_its_TransferId()
    {
        var key = $"scoped-{Guid.NewGuid():N}";

        var (failed, records) = await TransferWhileTheLedgerFails(() => new InvalidOperationException("injected"), key);
        using var _ = failed;

        await failed.AssertProblem(HttpStatusCode.InternalServerError, "internal_error");
        var errors = records.Where(record => record.Level >= LogLevel.Error).ToArray();
        Assert.NotEmpty(errors);
        Assert.All(errors, error => Assert.Equal(key, error.TransferId));
    }

    /// <summary>
    /// A failure the client is told to retry (here the ledger's answer missing: 503) is one warning
    /// with the transfer's id, not an error with a stack per request, as during a silo's death.
    /// </summary>
    [Fact]
    public async Task A_ledger_that_does_not_answer_in_time_is_a_503_logged_as_one_warning_not_an_error()
    {
        var key = $"late-{Guid.NewGuid():N}";

        var (failed, records) = await TransferWhileTheLedgerFails(() => new TimeoutException("Response did not arrive on time (injected)"), key);
        using var _ = failed;

        await failed.AssertProblem(HttpStatusCode.ServiceUnavailable, "ledger_unavailable");
        Assert.Equal("1", failed.Headers.RetryAfter?.ToString());
        Assert.DoesNotContain(records, record => record.Level >= LogLevel.Error);
        var warning = Assert.Single(records, record => record.Level == LogLevel.Warning && record.Category == "Transactor.Api");
        Assert.Equal(key, warning.TransferId);
    }

    /// <summary>
    /// <c>POST /transfers</c> under <paramref name="key"/> to an API whose ledger throws <paramref name="failure"/>,
    /// with every log record of the API kept (level, category, the TransferId of its scope).
    /// </summary>
    private async Task<(HttpResponseMessage Response, ConcurrentQueue<(LogLevel Level, string Category, string? TransferId)> Records)> TransferWhileTheLedgerFails(Func<Exception> failure, string key)
    {
        var records = new ConcurrentQueue<(LogLevel Level, string Category, string? TransferId)>();
        using var factory = fixture.WithServices(services =>
        {
            services.AddSingleton(MetricsTruthTests.FailingClusterClient.Create(failure));
            services.AddSingleton<ILoggerProvider>(new ScopeRecorder(records));
        });
        using var client = factory.CreateClient();
        var response = await client.SendAsync(Http.Post("/transfers", """{"from":"a","to":"b","amount":10,"currency":"USD"}""", key));
        await response.Content.LoadIntoBufferAsync();
        return (response, records);
    }

    private sealed class ScopeRecorder(ConcurrentQueue<(LogLevel, string, string?)> records) : ILoggerProvider, ISupportExternalScope
    {
        private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

        public ILogger CreateLogger(string categoryName) => new Recorder(categoryName, this);

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public void Dispose()
        {
        }

        private sealed class Recorder(string category, ScopeRecorder provider) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => provider._scopes.Push(state);

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                string? transferId = null;
                provider._scopes.ForEachScope(
                    (scope, _) =>
                    {
                        if (scope is IEnumerable<KeyValuePair<string, object?>> pairs && pairs.FirstOrDefault(pair => pair.Key == "TransferId") is { Value: string id })
                        {
                            transferId = id;
                        }
                    },
                    (object?)null);
                provider.Record(logLevel, category, transferId);
            }
        }

        private void Record(LogLevel level, string category, string? transferId) => records.Enqueue((level, category, transferId));
    }
}
