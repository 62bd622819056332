using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Transactor.ServiceDefaults;

namespace Transactor.Tests.Telemetry;

/// <summary>
/// What the Aspire dashboard's traces page shows with the service defaults: the requests' traces,
/// with their grain calls and database commands, and not Orleans' own background traces.
/// </summary>
public sealed class BackgroundSpanFilterTests
{
    private static readonly string[] s_kept = ["ITransferCoordinatorGrain/Execute", "IGrainDirectory/Lookup", "transactordb", "POST /transfers", "IAccountGrain/Prepare"];

    [Fact]
    public async Task Background_roots_of_Orleans_and_Npgsql_are_left_out_and_request_traces_keep_them()
    {
        var exported = new ConcurrentQueue<Activity>();
        var builder = Host.CreateApplicationBuilder();
        // Any OTLP endpoint switches tracing on; nothing listens there, and nothing needs to.
        builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9";
        builder.AddServiceDefaults();
        builder.Services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddProcessor(new SimpleActivityExportProcessor(new Collector(exported))));
        using var host = builder.Build();
        await host.StartAsync();

        using var aspNetCore = new ActivitySource("Microsoft.AspNetCore");
        using var orleansApplication = new ActivitySource("Microsoft.Orleans.Application");
        using var orleansRuntime = new ActivitySource("Microsoft.Orleans.Runtime");
        using var npgsql = new ActivitySource("Npgsql");

        // Background: a timer's grain call with a database write under it, a membership ping, a table poll.
        using (var timerCall = orleansApplication.StartActivity("IRecoveryShardGrain/Sweep", ActivityKind.Client))
        {
            Assert.True(timerCall is null || !timerCall.Recorded, "a background root is not recorded");
            using var write = npgsql.StartActivity("transactordb", ActivityKind.Client);
        }

        using (orleansRuntime.StartActivity("IMembershipService/Ping", ActivityKind.Client))
        {
        }

        using (npgsql.StartActivity("transactordb", ActivityKind.Client))
        {
        }

        // A request: its grain calls (application and runtime) and its database commands are kept.
        using (var request = aspNetCore.StartActivity("POST /transfers", ActivityKind.Server))
        {
            Assert.NotNull(request);
            using (orleansApplication.StartActivity("ITransferCoordinatorGrain/Execute", ActivityKind.Client))
            using (orleansRuntime.StartActivity("IGrainDirectory/Lookup", ActivityKind.Client))
            using (npgsql.StartActivity("transactordb", ActivityKind.Client))
            {
            }
        }

        // A grain call that arrives from another process with a recorded parent is kept too.
        var remoteParent = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded, isRemote: true);
        using (orleansApplication.StartActivity("IAccountGrain/Prepare", ActivityKind.Server, remoteParent))
        {
        }

        await host.StopAsync();
        Assert.Equal(
            s_kept.Order(),
            exported.Select(span => span.DisplayName).Order());
        Assert.Single(exported.Select(span => span.TraceId).Where(id => id != remoteParent.TraceId).Distinct());
    }

    private sealed class Collector(ConcurrentQueue<Activity> exported) : BaseExporter<Activity>
    {
        public override ExportResult Export(in Batch<Activity> batch)
        {
            foreach (var activity in batch)
            {
                exported.Enqueue(activity);
            }

            return ExportResult.Success;
        }
    }
}
