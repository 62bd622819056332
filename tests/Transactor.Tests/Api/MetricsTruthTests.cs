using System.Net;
using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Transactor.Tests.Api;

/// <summary>
/// <c>/metrics</c> counts every ledger response by the status it ended with, also the 500s and
/// 503s that the error handler writes after an exception (issue #23: an API answering hundreds of
/// 500s reported a success rate of 1).
/// </summary>
[Collection(ApiTestGroup.Name)]
public sealed class MetricsTruthTests(ApiFixture fixture)
{
    [Fact]
    public async Task Responses_written_by_the_error_handler_count_as_failures()
    {
        // The ledger behind this API fails every call: first with a timeout (503), then with an
        // unexpected error (500). The metrics endpoint itself tolerates both.
        var failures = new Queue<Exception>([new TimeoutException("injected"), new OrleansException("injected"), new TimeoutException("injected")]);
        using var factory = fixture.WithServices(services => services.AddSingleton(FailingClusterClient.Create(() => failures.TryDequeue(out var next) ? next : new TimeoutException("injected"))));
        using var client = factory.CreateClient();

        using var unavailable = await client.SendAsync(Http.Post("/transfers", """{"from":"a","to":"b","amount":10,"currency":"USD"}""", $"t-{Guid.NewGuid():N}"));
        using var failed = await client.SendAsync(Http.Post("/transfers", """{"from":"a","to":"b","amount":10,"currency":"USD"}""", $"t-{Guid.NewGuid():N}"));
        using var metrics = await client.GetAsync("/metrics");

        await unavailable.AssertProblem(HttpStatusCode.ServiceUnavailable, "ledger_unavailable");
        await failed.AssertProblem(HttpStatusCode.InternalServerError, "internal_error");
        using var body = JsonDocument.Parse(await metrics.Content.ReadAsStringAsync());
        Assert.Equal(2, body.RootElement.GetProperty("requests_total").GetInt64());
        Assert.Equal(0.0, body.RootElement.GetProperty("success_rate").GetDouble());
    }

    /// <summary>An Orleans client whose every call throws the next exception of a sequence.</summary>
    public class FailingClusterClient : DispatchProxy
    {
        private Func<Exception> _next = null!;

        public static IClusterClient Create(Func<Exception> next)
        {
            var client = DispatchProxy.Create<IClusterClient, FailingClusterClient>();
            ((FailingClusterClient)(object)client)._next = next;
            return client;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => throw _next();
    }
}
