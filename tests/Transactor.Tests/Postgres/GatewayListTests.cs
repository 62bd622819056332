using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Orleans.Configuration;
using Orleans.Messaging;
using Transactor.Persistence;

namespace Transactor.Tests.Postgres;

/// <summary>
/// The gateway list an Orleans client reads through Orleans' ADO.NET clustering on the project's
/// schema (migration 004): a silo row superseded by a newer generation on the same address is not a
/// gateway, and its successor is one once it is active.
/// </summary>
[Collection(PostgresTestGroup.Name)]
public sealed class GatewayListTests(PostgresFixture postgres)
{
    private const string ClusterId = "gateways";
    private const int Active = 3;
    private const int Joining = 2;
    private const int Dead = 6;

    [Fact]
    public async Task A_silo_restarted_on_its_address_replaces_its_dead_predecessor_as_a_gateway_once_active()
    {
        var database = await postgres.Server.CreateDatabaseAsync("gateways");
        await LedgerSchema.MigrateAsync(database);
        await Execute(database, "INSERT INTO orleans_membership_version (deployment_id, version) VALUES (@d, 1)");
        // silo1 was killed and has started again (its new row is joining); silo2 runs on; silo3 is no gateway;
        // silo4 died and was declared dead.
        await InsertSilo(database, port: 11111, generation: 100, Active, proxyPort: 30000);
        await InsertSilo(database, port: 11111, generation: 200, Joining, proxyPort: 30000);
        await InsertSilo(database, port: 11112, generation: 100, Active, proxyPort: 30001);
        await InsertSilo(database, port: 11113, generation: 100, Active, proxyPort: 0);
        await InsertSilo(database, port: 11114, generation: 100, Dead, proxyPort: 30003);

        using var host = ClientHost(database);
        var gateways = host.Services.GetRequiredService<IGatewayListProvider>();
        await gateways.InitializeGatewayListProvider();

        // The dead predecessor is not offered, though its row still says Active; the successor is not yet.
        Assert.Equal([(30001, 100)], Listed(await gateways.GetGateways()));

        await Execute(database, "UPDATE orleans_membership SET status = 3 WHERE deployment_id = @d AND port = 11111 AND generation = 200");

        Assert.Equal([(30000, 200), (30001, 100)], Listed(await gateways.GetGateways()));
    }

    private static IHost ClientHost(string database)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(options => (options.ClusterId, options.ServiceId) = (ClusterId, ClusterId));
            client.UseAdoNetClustering(options => (options.Invariant, options.ConnectionString) = (LedgerSchema.Invariant, database));
        });
        return builder.Build();
    }

    private static (int Port, int Generation)[] Listed(IList<Uri> gateways) =>
        [.. gateways.Select(uri => (uri.Port, int.Parse(uri.AbsolutePath.Trim('/'), System.Globalization.CultureInfo.InvariantCulture))).OrderBy(g => g.Port)];

    private static Task InsertSilo(string database, int port, int generation, int status, int proxyPort) =>
        Execute(database,
            """
            INSERT INTO orleans_membership (deployment_id, address, port, generation, silo_name, host_name, status, proxy_port, start_time, iamalive_time)
            VALUES (@d, '127.0.0.1', @port, @generation, 'silo', 'host', @status, @proxy, now(), now())
            """,
            ("port", port), ("generation", generation), ("status", status), ("proxy", proxyPort));

    private static async Task Execute(string database, string sql, params (string Name, int Value)[] parameters)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue("d", ClusterId);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        await command.ExecuteNonQueryAsync();
    }
}
