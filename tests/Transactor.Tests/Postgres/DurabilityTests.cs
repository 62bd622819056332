using Npgsql;
using Transactor.Domain;
using Transactor.Persistence;
using Transactor.Tests.Cluster;

namespace Transactor.Tests.Postgres;

[Collection(PostgresTestGroup.Name)]
public sealed class DurabilityTests(PostgresFixture postgres)
{
    [Fact]
    public async Task Schema_migrations_are_idempotent()
    {
        var database = await postgres.Server.CreateDatabaseAsync();

        var first = await LedgerSchema.MigrateAsync(database);
        var second = await LedgerSchema.MigrateAsync(database);

        Assert.Equal(LedgerSchema.Migrations.Count, first);
        Assert.Equal(0, second);
    }

    [Theory]
    [MemberData(nameof(PostgresCluster.StorageProviders), MemberType = typeof(PostgresCluster))]
    public async Task Balances_records_and_idempotency_results_survive_a_whole_cluster_restart(string storage)
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var serviceId = $"restart-{Guid.NewGuid():N}"[..20];
        string[] ids;
        TransferRequest committed, rejected;
        TransferResult committedResult, rejectedResult;

        var cluster = await PostgresCluster.StartAsync(database, serviceId, silos: 2, storage: storage);
        try
        {
            var ledger = new Ledger(cluster.Client);
            ids = await ledger.OpenFunded("acct", 3, 10_000);
            committed = new TransferRequest("restart-committed", ids[0], ids[1], 2_500, "USD");
            rejected = new TransferRequest("restart-rejected", ids[2], ids[1], 50_000, "USD");
            committedResult = await ledger.Execute(committed);
            rejectedResult = await ledger.Execute(rejected);
            Assert.Equal(TransferStatus.Committed, committedResult.Status);
            Assert.Equal(RejectionReason.InsufficientFunds, rejectedResult.Reason);
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }

        var restarted = await PostgresCluster.StartAsync(database, serviceId, silos: 2, storage: storage);
        try
        {
            var ledger = new Ledger(restarted.Client);
            var balances = (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor).ToArray();
            Assert.Equal([7_500L, 12_500L, 10_000L], balances);

            var committedAgain = await ledger.Coordinator.Execute(committed);
            var rejectedAgain = await ledger.Coordinator.Execute(rejected);
            var reused = await ledger.Coordinator.Execute(committed with { AmountMinor = 1 });

            Assert.True(committedAgain.Replayed);
            Assert.Equal(committedResult with { Replayed = true }, committedAgain);
            Assert.Equal((TransferStatus.Rejected, RejectionReason.InsufficientFunds), (rejectedAgain.Status, rejectedAgain.Reason));
            Assert.Equal(RejectionReason.IdempotencyKeyReused, reused.Reason);
            Assert.Equal(balances, (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
            var record = await restarted.Client.GetTransferResult(committed.TransferId);
            Assert.Equal(TransferStatus.Committed, record!.Status);
        }
        finally
        {
            await restarted.StopAllSilosAsync();
            await restarted.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(PostgresCluster.StorageProviders), MemberType = typeof(PostgresCluster))]
    public async Task Api_keys_their_revocation_and_the_replay_check_survive_a_whole_cluster_restart(string storage)
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var serviceId = $"keys-{Guid.NewGuid():N}"[..20];
        var now = DateTimeOffset.UtcNow;
        ApiKeyRecord Key(string id, ApiKeyRole role) => new(id, "name of " + id, role, ApiKeyState.Active, [1, 2, 3], [4, 5, 6], now, null, RequireSignature: role == ApiKeyRole.Client, RatePerSecond: 7, Burst: null);
        var (kept, revoked) = (Key("k00000000000000aa", ApiKeyRole.Client), Key("k00000000000000bb", ApiKeyRole.Admin));

        var cluster = await PostgresCluster.StartAsync(database, serviceId, silos: 1, storage: storage);
        try
        {
            foreach (var key in new[] { kept, revoked })
            {
                Assert.True(await cluster.Client.GetGrain<IApiKeyRegistryGrain>(0).Add(key.KeyId));
                Assert.Equal(key, await cluster.Client.GetGrain<IApiKeyGrain>(key.KeyId).Create(key), ApiKeyRecordComparer.Instance);
            }

            await cluster.Client.GetGrain<IApiKeyGrain>(revoked.KeyId).Revoke(now);

            // Nonces of signed requests: one signed now (kept in memory), one 3 minutes ahead (stored).
            Assert.Equal([NonceOutcome.Fresh, NonceOutcome.Fresh], await cluster.Client.GetGrain<INonceGrain>(5).TryUse([NonceUse.Of("k:now", now), NonceUse.Of("k:ahead", now.AddMinutes(3))]));
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }

        var restarted = await PostgresCluster.StartAsync(database, serviceId, silos: 1, storage: storage);
        try
        {
            Assert.Equal([kept.KeyId, revoked.KeyId], await restarted.Client.GetGrain<IApiKeyRegistryGrain>(0).List());
            Assert.Equal(kept, await restarted.Client.GetGrain<IApiKeyGrain>(kept.KeyId).Get(), ApiKeyRecordComparer.Instance);
            var stillRevoked = await restarted.Client.GetGrain<IApiKeyGrain>(revoked.KeyId).Get();
            Assert.Equal((ApiKeyState.Revoked, now), (stillRevoked!.State, stillRevoked.RevokedAt));
            Assert.Null(await restarted.Client.GetGrain<IApiKeyGrain>("k00000000000000cc").Get());

            // After the restart neither can be replayed: the one in memory cannot be judged, the stored one is known.
            Assert.Equal([NonceOutcome.BeforeShardStart, NonceOutcome.Replayed], await restarted.Client.GetGrain<INonceGrain>(5).TryUse([NonceUse.Of("k:now", now), NonceUse.Of("k:ahead", now.AddMinutes(3))]));
        }
        finally
        {
            await restarted.StopAllSilosAsync();
            await restarted.DisposeAsync();
        }
    }

    /// <summary>Records compared field by field, the hashes by content (records compare arrays by reference).</summary>
    private sealed class ApiKeyRecordComparer : IEqualityComparer<ApiKeyRecord?>
    {
        public static ApiKeyRecordComparer Instance { get; } = new();

        public bool Equals(ApiKeyRecord? x, ApiKeyRecord? y) =>
            x is not null && y is not null && x with { SecretHash = [], SigningKey = [] } == y with { SecretHash = [], SigningKey = [] }
            && x.SecretHash.AsSpan().SequenceEqual(y.SecretHash) && x.SigningKey.AsSpan().SequenceEqual(y.SigningKey);

        public int GetHashCode(ApiKeyRecord? obj) => obj?.KeyId.GetHashCode(StringComparison.Ordinal) ?? 0;
    }

    [Fact]
    public async Task State_that_earlier_versions_wrote_as_json_is_read_and_rewritten_in_binary()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var serviceId = $"json-{Guid.NewGuid():N}"[..20];
        string[] ids;
        TransferRequest earlier;
        TransferResult earlierResult;

        var old = await PostgresCluster.StartAsync(database, serviceId, jsonState: true);
        try
        {
            var ledger = new Ledger(old.Client);
            ids = await ledger.OpenFunded("json", 2, 10_000);
            earlier = new TransferRequest("json-earlier", ids[0], ids[1], 1_000, "USD");
            earlierResult = await ledger.Execute(earlier);
            Assert.Equal(TransferStatus.Committed, earlierResult.Status);
        }
        finally
        {
            await old.StopAllSilosAsync();
            await old.DisposeAsync();
        }

        Assert.Equal(("json", "json"), await Encodings(database, serviceId, ids));

        var upgraded = await PostgresCluster.StartAsync(database, serviceId);
        try
        {
            var ledger = new Ledger(upgraded.Client);
            Assert.Equal([9_000L, 11_000L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
            Assert.Equal(earlierResult with { Replayed = true }, await ledger.Coordinator.Execute(earlier));

            var later = await ledger.Execute(new TransferRequest("json-later", ids[1], ids[0], 500, "USD"));

            Assert.Equal(TransferStatus.Committed, later.Status);
            Assert.Equal([9_500L, 10_500L], (await ledger.Snapshots(ids)).Select(s => s.AvailableMinor));
            Assert.Equal(("binary", "binary"), await Encodings(database, serviceId, ids));
            // History starts when this version first loads the account, with its balances then.
            var history = (await upgraded.Client.GetAccountHistory().Entries(ids[0], 0, 10))!;
            Assert.Equal([(HistoryKind.TransferIn, 500L, 9_500L)], history.Entries.Select(e => (e.Kind, e.AmountMinor, e.AvailableMinor)));
        }
        finally
        {
            await upgraded.StopAllSilosAsync();
            await upgraded.DisposeAsync();
        }
    }

    /// <summary>How the two accounts' rows are encoded: JSON starts with '{'.</summary>
    private static async Task<(string, string)> Encodings(string database, string serviceId, string[] ids)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT grain_id_ext, get_byte(payload, 0) = 123 FROM orleans_grain_state WHERE service_id = @service AND state_name = 'account' ORDER BY grain_id_ext", connection);
        command.Parameters.AddWithValue("service", serviceId);
        var encodings = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            encodings[reader.GetString(0)] = reader.GetBoolean(1) ? "json" : "binary";
        }

        return (encodings[$"acct/{ids[0]}"], encodings[$"acct/{ids[1]}"]);
    }

    [Theory]
    [MemberData(nameof(PostgresCluster.StorageProviders), MemberType = typeof(PostgresCluster))]
    public async Task Hundreds_of_concurrent_movements_share_recovery_and_directory_writes_safely(string storage)
    {
        // Recovery shards and the account directory are reentrant and group their writes; the
        // ADO.NET provider serializes state asynchronously, so a write must never see a list that
        // a later turn is changing.
        var database = await postgres.Server.CreateDatabaseAsync();
        var cluster = await PostgresCluster.StartAsync(database, $"burst-{Guid.NewGuid():N}"[..16], storage: storage);
        try
        {
            var ledger = new Ledger(cluster.Client);
            var ids = await ledger.OpenFunded("burst", 100, 0);
            await Task.WhenAll(ids.Select(id => cluster.Client.GetGrain<IAccountDirectoryGrain>(0).Add(id)));

            var results = await Task.WhenAll(Enumerable.Range(0, 600).Select(i =>
                ledger.Execute(TransferRequest.Deposit($"burst-{i}", ids[i % ids.Length], 10))));

            Assert.All(results, r => Assert.Equal(TransferStatus.Committed, r.Status));
            await ledger.AssertBalanced(ids, 6_000);
            var page = await cluster.Client.GetGrain<IAccountDirectoryGrain>(0).Page(null, 1_000);
            Assert.Equal(100, page.Total);
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(PostgresCluster.StorageProviders), MemberType = typeof(PostgresCluster))]
    public async Task Two_services_on_one_database_do_not_see_each_other(string storage)
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var a = await PostgresCluster.StartAsync(database, $"svc-a-{Guid.NewGuid():N}"[..16], storage: storage);
        var b = await PostgresCluster.StartAsync(database, $"svc-b-{Guid.NewGuid():N}"[..16], storage: storage);
        try
        {
            var inA = new Ledger(a.Client);
            var inB = new Ledger(b.Client);
            await inA.OpenFunded("shared", 1, 100);

            Assert.Null(await b.Client.GetAccount("shared-00000").GetSnapshot());
            await inB.OpenFunded("shared", 1, 5);
            var deposit = TransferRequest.Deposit("same-key", "shared-00000", 1);
            Assert.Equal(TransferStatus.Committed, (await inA.Execute(deposit)).Status);
            Assert.False((await inB.Execute(deposit)).Replayed);

            Assert.Equal(101, (await inA.Snapshots(["shared-00000"]))[0].AvailableMinor);
            Assert.Equal(6, (await inB.Snapshots(["shared-00000"]))[0].AvailableMinor);
        }
        finally
        {
            await a.StopAllSilosAsync();
            await b.StopAllSilosAsync();
            await a.DisposeAsync();
            await b.DisposeAsync();
        }
    }
}
