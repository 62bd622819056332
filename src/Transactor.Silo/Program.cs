using Orleans.Dashboard;
using Transactor.Persistence;
using Transactor.ServiceDefaults;
using Transactor.Silo;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();

await LedgerSchema.MigrateConfiguredAsync(builder.Configuration);
builder.AddLedgerSilo();
builder.AddSiloHealthChecks();

var app = builder.Build();

if (DashboardAccess.Enabled(app.Configuration))
{
    app.UseDashboardAccess("/dashboard");
    app.MapOrleansDashboard(routePrefix: "/dashboard");
    app.MapGet("/", () => Results.Redirect("/dashboard"));
}

app.MapDefaultEndpoints();

app.Run();
