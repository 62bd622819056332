using System.Net;
using Microsoft.Diagnostics.Tracing;

namespace Transactor.Tests.Api;

/// <summary><c>POST /debug/trace</c>: off unless configured; when on, a real EventPipe trace of the process.</summary>
[Collection(ApiTestGroup.Name)]
public sealed class TraceEndpointTests(ApiFixture fixture)
{
    /// <summary>The EventPipe provider of CPU samples, Microsoft-DotNETCore-SampleProfiler.</summary>
    private static readonly Guid SampleProfiler = new("3c530d44-97ae-513a-1e6d-783e8f8e03a9");

    [Fact]
    public async Task The_trace_endpoint_does_not_exist_unless_enabled()
    {
        using var response = await fixture.CreateClient().PostAsync("/debug/trace?seconds=1", null);

        await response.AssertProblem(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task An_enabled_trace_endpoint_refuses_callers_without_an_admin_key_and_returns_a_parseable_nettrace_with_cpu_samples_and_runtime_events_and_refuses_a_bad_duration()
    {
        await using var enabled = fixture.WithSettings(("Transactor:Debug:TraceEnabled", "true"));
        using var client = enabled.CreateClient();

        using var anonymous = enabled.CreateClient();
        anonymous.DefaultRequestHeaders.Authorization = null;
        using var refused = await anonymous.PostAsync("/debug/trace?seconds=1", null);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        using var tooLong = await client.PostAsync("/debug/trace?seconds=61", null);
        await tooLong.AssertProblem(HttpStatusCode.BadRequest, "invalid_field");
        using var response = await client.PostAsync("/debug/trace?seconds=1", null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(bytes.Length > 1_000, $"a trace of {bytes.Length} bytes");
        var events = 0;
        var clrEvents = 0;
        var providers = new HashSet<Guid>();
        using (var source = new EventPipeEventSource(new MemoryStream(bytes)))
        {
            source.AllEvents += e =>
            {
                events++;
                providers.Add(e.ProviderGuid);
            };
            source.Clr.All += _ => clrEvents++;
            Assert.True(source.Process(), "the trace could not be read to its end");
        }

        Assert.True(events > 0, "the trace holds no event");
        Assert.True(clrEvents > 0, "no event of the runtime's provider parsed");
        Assert.Contains(SampleProfiler, providers);
    }
}
