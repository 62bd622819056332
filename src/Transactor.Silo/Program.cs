using Orleans.Dashboard;
using Transactor.Silo;

var builder = WebApplication.CreateBuilder(args);

builder.AddLedgerSilo();
builder.AddSiloHealthChecks();

var app = builder.Build();

app.MapOrleansDashboard(routePrefix: "/dashboard");
app.MapSiloHealthEndpoints();
app.MapGet("/", () => Results.Redirect("/dashboard"));

app.Run();
