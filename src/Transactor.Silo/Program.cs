using Orleans.Dashboard;
using Transactor.Persistence;
using Transactor.Silo;

var builder = WebApplication.CreateBuilder(args);

await LedgerSchema.MigrateConfiguredAsync(builder.Configuration);
builder.AddLedgerSilo();
builder.AddSiloHealthChecks();

var app = builder.Build();

app.MapOrleansDashboard(routePrefix: "/dashboard");
app.MapSiloHealthEndpoints();
app.MapGet("/", () => Results.Redirect("/dashboard"));

app.Run();
