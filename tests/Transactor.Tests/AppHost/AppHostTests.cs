using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting.ApplicationModel;
using Npgsql;
using Transactor.Tests.Api;
using Transactor.Tests.Postgres;
using Xunit.Abstractions;

namespace Transactor.Tests.AppHost;

/// <summary>
/// `dotnet run --project AppHost` as a test: the whole topology (PostgreSQL, three silos, the API,
/// the load generator) started by Aspire, money moved through the API's real HTTP endpoint.
/// </summary>
[Collection(AppHostTestGroup.Name)]
public sealed class AppHostTests(ITestOutputHelper output)
{
    private const long InitialMinor = 100_000;
    private const int Accounts = 8;

    [Fact]
    public async Task Local_postgres_topology_keeps_every_acknowledged_transfer_across_a_silo_restart_under_load()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(12));
        var cancellation = timeout.Token;
        await using var topology = await AspireTopology.StartAsync(localPostgres: true, ["--Transactor:LoadGen:Transfers=300"], cancellation);
        output.WriteLine($"AppHost start to all healthy (local PostgreSQL, first run: initdb included): {topology.StartedIn.TotalSeconds:F1} s");
        using var http = topology.CreateApiClient();
        http.Timeout = TimeSpan.FromSeconds(30);

        var accounts = new List<string>();
        for (var i = 0; i < Accounts; i++)
        {
            accounts.Add(await http.OpenAccount(InitialMinor));
        }

        // Clients send transfers (each retried with its key until it has an answer that ends it)
        // while silo2 is stopped and started again through Aspire's resource commands.
        var log = new TransferLog();
        using var stopLoad = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).Select(client => Task.Run(() => SendTransfers(http, accounts, client, log, stopLoad.Token, cancellation))).ToArray();

        await log.WaitForCommitted(20, cancellation);
        await topology.ExecuteAsync("silo2", KnownResourceCommands.StopCommand, cancellation);
        await topology.WaitForStateAsync("silo2", [KnownResourceStates.Exited, KnownResourceStates.Finished], cancellation);
        var committedWhileDown = log.Committed;
        output.WriteLine($"silo2 stopped after {committedWhileDown} committed transfers");
        await log.WaitForCommitted(committedWhileDown + 20, cancellation);
        await topology.ExecuteAsync("silo2", KnownResourceCommands.StartCommand, cancellation);
        await topology.WaitForHealthyAsync("silo2", cancellation);
        var committedAtRestart = log.Committed;
        output.WriteLine($"silo2 healthy again after {committedAtRestart} committed transfers");
        await log.WaitForCommitted(committedAtRestart + 20, cancellation);

        await stopLoad.CancelAsync();
        await Task.WhenAll(clients);
        output.WriteLine($"{log.Committed} committed, {log.Rejected} rejected, {log.Retries} retried answers (5xx, 429 or no answer)");

        // Every acknowledged transfer reads back committed, and the balances are exactly what the
        // ended transfers say: nothing lost, nothing applied twice, nothing left held.
        var expected = accounts.ToDictionary(id => id, _ => InitialMinor);
        foreach (var (key, transfer) in log.Ended)
        {
            var read = await http.GetFromJsonAsync<JsonElement>($"/transfers/{key}", cancellation);
            var status = read.GetProperty("status").GetString();
            Assert.True(status == (transfer.Committed ? "committed" : "rejected"), $"{key}: answered {(transfer.Committed ? "committed" : "rejected")}, reads {status}");
            if (transfer.Committed)
            {
                expected[transfer.From] -= transfer.AmountMinor;
                expected[transfer.To] += transfer.AmountMinor;
            }
        }

        foreach (var id in accounts)
        {
            var account = await http.GetFromJsonAsync<JsonElement>($"/accounts/{id}", cancellation);
            Assert.Equal(expected[id], account.GetProperty("available").GetInt64());
            Assert.Equal(0, account.GetProperty("reserved").GetInt64());
            Assert.Equal(0, account.GetProperty("incoming").GetInt64());
        }

        Assert.Equal(Accounts * InitialMinor, expected.Values.Sum());

        // The load generator resource, started as the dashboard's ▶ button starts it, runs its
        // bounded load and its books check (it exits 1 if money was lost or created).
        await topology.ExecuteAsync("loadgen", KnownResourceCommands.StartCommand, cancellation);
        var ended = await topology.WaitForStateAsync("loadgen", [KnownResourceStates.Exited, KnownResourceStates.Finished, KnownResourceStates.FailedToStart], cancellation);
        Assert.True(ended.Snapshot.ExitCode == 0, $"loadgen ended {ended.Snapshot.State?.Text} with exit code {ended.Snapshot.ExitCode}");
        var metrics = await http.GetFromJsonAsync<JsonElement>("/metrics", cancellation);
        Assert.Equal(3, metrics.GetProperty("silos").GetInt32());
        Assert.True(metrics.GetProperty("transfers_committed").GetInt64() >= log.Committed + 300, metrics.ToString());
    }

    [Fact]
    public async Task Memory_topology_forms_one_cluster_of_three_silos_and_moves_money()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        var cancellation = timeout.Token;
        await using var topology = await AspireTopology.StartAsync(localPostgres: false, ["--storage", "memory"], cancellation);
        output.WriteLine($"AppHost start to all healthy (memory): {topology.StartedIn.TotalSeconds:F1} s");
        using var http = topology.CreateApiClient();

        var from = await http.OpenAccount(5_000);
        var to = await http.OpenAccount();
        var key = $"apphost-{Guid.NewGuid():N}";
        using var transfer = await http.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":1234,"currency":"USD"}""", key), cancellation);

        Assert.Equal(HttpStatusCode.Created, transfer.StatusCode);
        Assert.Equal((3_766L, 1_234L), (await http.Available(from), await http.Available(to)));
        var metrics = await http.GetFromJsonAsync<JsonElement>("/metrics", cancellation);
        Assert.Equal(3, metrics.GetProperty("silos").GetInt32());
    }

    [Fact]
    public async Task Connection_string_topology_keeps_the_ledger_in_the_named_server()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        var cancellation = timeout.Token;
        await using var server = await PostgresServer.StartAsync();
        var connectionString = await server.CreateDatabaseAsync("apphost");
        await using var topology = await AspireTopology.StartAsync(localPostgres: false, ["--storage", connectionString], cancellation);
        output.WriteLine($"AppHost start to all healthy (connection string): {topology.StartedIn.TotalSeconds:F1} s");
        using var http = topology.CreateApiClient();

        var from = await http.OpenAccount(5_000);
        var to = await http.OpenAccount();
        using var transfer = await http.SendAsync(Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":1234,"currency":"USD"}""", $"apphost-{Guid.NewGuid():N}"), cancellation);
        Assert.Equal(HttpStatusCode.Created, transfer.StatusCode);

        // The silos joined the cluster through that server's membership table and keep the accounts in its storage table.
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellation);
        await using var silos = new NpgsqlCommand("SELECT count(*) FROM orleans_membership WHERE deployment_id = 'transactor' AND status = 3", connection);
        Assert.Equal(3L, await silos.ExecuteScalarAsync(cancellation));
        await using var rows = new NpgsqlCommand("SELECT count(*) FROM orleans_grain_state", connection);
        Assert.True((long)(await rows.ExecuteScalarAsync(cancellation))! >= 2, "the two accounts are stored in the named server");
    }

    private static async Task SendTransfers(HttpClient http, List<string> accounts, int client, TransferLog log, CancellationToken stop, CancellationToken cancellation)
    {
        var random = new Random(client);
        for (var n = 0; !stop.IsCancellationRequested; n++)
        {
            var from = accounts[random.Next(accounts.Count)];
            var to = accounts[(accounts.IndexOf(from) + 1 + random.Next(accounts.Count - 1)) % accounts.Count];
            var transfer = new Transfer(from, to, random.Next(1, 5_000));
            var key = $"apphost-{client}-{n}-{Guid.NewGuid():N}";
            var json = $$"""{"from":"{{from}}","to":"{{to}}","amount":{{transfer.AmountMinor}},"currency":"USD"}""";

            // A transfer is retried with its key until it ends: never left half-known, as a real client would not leave it.
            while (true)
            {
                cancellation.ThrowIfCancellationRequested();
                var status = await Send(http, json, key, cancellation);
                if (status is HttpStatusCode.Created or HttpStatusCode.UnprocessableEntity)
                {
                    log.End(key, transfer with { Committed = status == HttpStatusCode.Created });
                    break;
                }

                log.Retried();
                await Task.Delay(TimeSpan.FromMilliseconds(200), cancellation);
            }
        }
    }

    private static async Task<HttpStatusCode?> Send(HttpClient http, string json, string key, CancellationToken cancellation)
    {
        try
        {
            using var response = await http.SendAsync(Http.Post("/transfers", json, key), cancellation);
            return response.StatusCode; // 202 (pending) is sent again: the replay answers once it has ended
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellation.IsCancellationRequested)
        {
            return null;
        }
    }

    private sealed record Transfer(string From, string To, long AmountMinor, bool Committed = false);

    private sealed class TransferLog
    {
        private readonly ConcurrentDictionary<string, Transfer> _ended = new();
        private int _committed;
        private int _rejected;
        private int _retries;

        public int Committed => Volatile.Read(ref _committed);

        public int Rejected => Volatile.Read(ref _rejected);

        public int Retries => Volatile.Read(ref _retries);

        public IEnumerable<KeyValuePair<string, Transfer>> Ended => _ended;

        public void End(string key, Transfer transfer)
        {
            Assert.True(_ended.TryAdd(key, transfer), key);
            Interlocked.Increment(ref transfer.Committed ? ref _committed : ref _rejected);
        }

        public void Retried() => Interlocked.Increment(ref _retries);

        public async Task WaitForCommitted(int count, CancellationToken cancellation)
        {
            while (Committed < count)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), cancellation);
            }
        }
    }
}

/// <summary>Each AppHost test starts a whole topology: alone, after the tests that run in parallel.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AppHostTestGroup
{
    public const string Name = "AppHost";
}
