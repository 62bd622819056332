using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Transactor.ServiceDefaults;

namespace Transactor.Tests.Api;

public sealed class TelemetryTests
{
    [Fact]
    public void Without_an_exporter_no_spans_are_recorded_but_metrics_are()
    {
        using var host = Build();

        Assert.Null(host.Services.GetService<TracerProvider>());
        Assert.NotNull(host.Services.GetService<MeterProvider>());
    }

    [Theory]
    [InlineData(ServiceDefaultsExtensions.OtlpEndpointKey, "http://127.0.0.1:4317")]
    [InlineData(ServiceDefaultsExtensions.ConsoleKey, "true")]
    public void With_an_exporter_spans_are_recorded(string key, string value)
    {
        using var host = Build((key, value));

        Assert.NotNull(host.Services.GetService<TracerProvider>());
    }

    private static IHost Build(params (string Key, string Value)[] settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        foreach (var (key, value) in settings)
        {
            builder.Configuration[key] = value;
        }

        builder.ConfigureOpenTelemetry();
        return builder.Build();
    }
}
