using Orleans.Dashboard;
using Transactor.Api.Apis;
using Transactor.Api.Events;
using Transactor.Api.Hosting;
using Transactor.Api.Http;
using Transactor.Api.Metrics;
using Transactor.Api.Security;
using Transactor.Api.Runs;
using Transactor.Persistence;
using Transactor.ServiceDefaults;

var builder = WebApplication.CreateBuilder(args);

// The dashboard's files live in the project's wwwroot; a build output (run-cluster.sh, the fault
// runner, `dotnet Transactor.Api.dll`) finds them through the build's static web assets manifest,
// which ASP.NET Core reads by itself only in Development. A published app has its own wwwroot and no
// manifest, and this is then a no-op.
builder.WebHost.UseStaticWebAssets();

builder.AddServiceDefaults();

await LedgerSchema.MigrateConfiguredAsync(builder.Configuration);
var mode = builder.AddLedger();
builder.AddApiServices();
builder.AddApiSecurity(mode);

var app = builder.Build();

// Metrics outermost: they count the status a response ends with, also one that the error handler,
// the status-code pages or the rate limiter wrote.
app.UseApiMetrics();
app.UseApiErrorHandling();
app.UseEarlyShedding();
app.UseApiSecurity();
app.UseRateLimitHeaders();
app.UseRateLimiter();

// The dashboard: static files from wwwroot, index.html at /.
app.UseDefaultFiles();
app.UseStaticFiles();

app.MapApiReference(mode);
if (DashboardAccess.Enabled(app.Configuration))
{
    app.UseDashboardAccess("/dashboard");
    app.MapOrleansDashboard(routePrefix: "/dashboard");
}

app.MapDefaultEndpoints();
app.MapAccountsApi();
app.MapAccountHistoryApi();
app.MapDisputesApi();
app.MapTransfersApi();
app.MapKeysApi();
app.MapBatchTransfersApi();
app.MapMetricsApi();
app.MapEventsApi();
app.MapRunsApi();
app.MapDebugApi(app.Configuration);

app.AnnounceLedger(mode);
app.AnnounceAdminKey();
app.Run();

/// <summary>The API's entry point; public for WebApplicationFactory.</summary>
public partial class Program;
