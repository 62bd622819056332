using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Orleans.Configuration;
using Orleans.Storage;
using Transactor.Persistence;
using Transactor.Tests.Api;

namespace Transactor.Tests.Postgres;

/// <summary>
/// The batched provider's contract, on a real PostgreSQL, in a silo that configures both providers
/// the way deployments do (<c>Orleans:GrainStorage:&lt;name&gt;:ProviderType</c>): per-write ETag
/// checks inside one batch, a failed transaction failing its whole batch, read after write, the
/// queue's limit, and rows that either provider reads and writes after the other.
/// </summary>
[Collection(PostgresTestGroup.Name)]
public sealed class BatchedGrainStorageTests(PostgresFixture postgres) : IAsyncLifetime
{
    private const string Batched = "batched";
    private const string AdoNet = "adonet";
    private const string Small = "small";
    private const int SmallQueue = 2;
    private const string State = "probe";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private IHost? _host;
    private string _database = "";

    private IHost Host => _host ?? throw new InvalidOperationException("The silo has not started.");

    private BatchedGrainStorage BatchedStorage => (BatchedGrainStorage)Storage(Batched);

    public async Task InitializeAsync()
    {
        _database = await postgres.Server.CreateDatabaseAsync("batched");
        await LedgerSchema.MigrateAsync(_database);
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var configuration = new Dictionary<string, string?>
        {
            ["ConnectionStrings:db"] = _database,
            ["Orleans:ServiceId"] = $"contract-{Guid.NewGuid():N}"[..20],
            ["Orleans:ClusterId"] = "contract",
        };
        foreach (var (name, type) in new[] { (Batched, BatchedGrainStorageRegistration.ProviderType), (AdoNet, "AdoNet"), (Small, BatchedGrainStorageRegistration.ProviderType) })
        {
            configuration[$"Orleans:GrainStorage:{name}:ProviderType"] = type;
            configuration[$"Orleans:GrainStorage:{name}:Invariant"] = LedgerSchema.Invariant;
            configuration[$"Orleans:GrainStorage:{name}:ConnectionName"] = "db";
        }

        configuration[$"Orleans:GrainStorage:{Small}:MaxQueuedOperations"] = SmallQueue.ToString(System.Globalization.CultureInfo.InvariantCulture);
        builder.Configuration.AddInMemoryCollection(configuration);
        builder.UseOrleans(silo => silo.UseLocalhostClustering(ApiFixture.FreePort(), ApiFixture.FreePort()));
        _host = builder.Build();
        await _host.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync();
            _host.Dispose();
        }
    }

    [Fact]
    public async Task A_write_is_read_back_and_a_missing_row_reads_as_no_record()
    {
        var storage = Storage(Batched);
        var id = Key("rw");

        var missing = await Read(storage, id);
        var written = new GrainState<Probe>(new Probe { Value = 7, Note = "first" });
        await storage.WriteStateAsync(State, id, written);
        var read = await Read(storage, id);

        Assert.False(missing.RecordExists);
        Assert.Null(missing.ETag);
        Assert.True(written.RecordExists);
        Assert.Equal((7L, "first", written.ETag, true), (read.State!.Value, read.State!.Note, read.ETag, read.RecordExists));
    }

    [Fact]
    public async Task Concurrent_writes_of_many_grains_share_one_commit()
    {
        var storage = BatchedStorage;
        var blocker = await Written(storage, Key("blocker"));
        var before = storage.Statistics;

        Task[] writes;
        await using (await LockRow(blocker.Id))
        {
            var first = storage.WriteStateAsync(State, blocker.Id, blocker.State);
            await WaitUntil(() => storage.Statistics.WriteFlushes == before.WriteFlushes + 1, "the first flush to start");
            writes = Enumerable.Range(0, 50).Select(i => storage.WriteStateAsync(State, Key($"many-{i}"), new GrainState<Probe>(new Probe { Value = i }))).Append(first).ToArray();
        }

        await Task.WhenAll(writes);
        var after = storage.Statistics;
        Assert.True(after.WriteFlushes - before.WriteFlushes == 2, $"51 writes took {after.WriteFlushes - before.WriteFlushes} flushes, expected 2 (the blocked one, then all 50 others)");
        Assert.True(after.LargestWriteFlush >= 50, $"largest flush {after.LargestWriteFlush}");
    }

    [Fact]
    public async Task A_version_conflict_inside_a_batch_fails_only_its_own_write()
    {
        var storage = BatchedStorage;
        var blocker = await Written(storage, Key("blocker"));
        var stale = await Written(storage, Key("stale"));
        var staleETag = stale.State.ETag;
        await storage.WriteStateAsync(State, stale.Id, stale.State); // moves the row past staleETag
        var before = storage.Statistics;

        Task first, good1, conflicting, good2;
        var (id1, id2) = (Key("good"), Key("good"));
        await using (await LockRow(blocker.Id))
        {
            first = storage.WriteStateAsync(State, blocker.Id, blocker.State);
            await WaitUntil(() => storage.Statistics.WriteFlushes == before.WriteFlushes + 1, "the first flush to start");
            good1 = storage.WriteStateAsync(State, id1, new GrainState<Probe>(new Probe { Value = 1 }));
            conflicting = storage.WriteStateAsync(State, stale.Id, new GrainState<Probe>(new Probe { Value = 99 }, staleETag));
            good2 = storage.WriteStateAsync(State, id2, new GrainState<Probe>(new Probe { Value = 2 }));
        }

        await first;
        await Assert.ThrowsAsync<InconsistentStateException>(() => conflicting);
        await good1;
        await good2;
        Assert.Equal(before.WriteFlushes + 2, storage.Statistics.WriteFlushes);
        Assert.Equal((1L, 2L), ((await Read(storage, id1)).State!.Value, (await Read(storage, id2)).State!.Value));
        Assert.Equal(stale.State.State!.Value, (await Read(storage, stale.Id)).State!.Value);
    }

    [Fact]
    public async Task A_transaction_that_fails_fails_every_write_of_its_batch_and_stores_none()
    {
        var storage = BatchedStorage;
        await Execute("""
            CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.grain_id_ext LIKE 'poison-%' THEN RAISE EXCEPTION 'poisoned row %', NEW.grain_id_ext; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON orleans_grain_state FOR EACH ROW EXECUTE FUNCTION poison();
            """);
        var blocker = await Written(storage, Key("blocker"));
        var before = storage.Statistics;

        Task first, poisoned, innocent1, innocent2;
        var (id1, id2) = (Key("innocent"), Key("innocent"));
        await using (await LockRow(blocker.Id))
        {
            first = storage.WriteStateAsync(State, blocker.Id, blocker.State);
            await WaitUntil(() => storage.Statistics.WriteFlushes == before.WriteFlushes + 1, "the first flush to start");
            innocent1 = storage.WriteStateAsync(State, id1, new GrainState<Probe>(new Probe { Value = 1 }));
            poisoned = storage.WriteStateAsync(State, Key("poison"), new GrainState<Probe>(new Probe { Value = 2 }));
            innocent2 = storage.WriteStateAsync(State, id2, new GrainState<Probe>(new Probe { Value = 3 }));
        }

        await first;
        foreach (var write in new[] { innocent1, poisoned, innocent2 })
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => write);
            Assert.Contains("poisoned row", error.MessageText, StringComparison.Ordinal);
        }

        Assert.False((await Read(storage, id1)).RecordExists, "a write of the failed batch was stored");
        Assert.False((await Read(storage, id2)).RecordExists, "a write of the failed batch was stored");
        var retried = new GrainState<Probe>(new Probe { Value = 1 });
        await storage.WriteStateAsync(State, id1, retried);
        Assert.True(retried.RecordExists);
    }

    [Fact]
    public async Task Operations_beyond_the_queue_limit_are_refused_at_once()
    {
        var storage = (BatchedGrainStorage)Storage(Small);
        var blocker = await Written(storage, Key("blocker"));
        var before = storage.Statistics;

        Task first;
        Task[] queued;
        Exception? refused;
        await using (await LockRow(blocker.Id))
        {
            first = storage.WriteStateAsync(State, blocker.Id, blocker.State);
            await WaitUntil(() => storage.Statistics.WriteFlushes == before.WriteFlushes + 1, "the first flush to start");
            queued = Enumerable.Range(0, SmallQueue).Select(i => storage.WriteStateAsync(State, Key("queued"), new GrainState<Probe>(new Probe { Value = i }))).ToArray();
            refused = await Record.ExceptionAsync(() => storage.WriteStateAsync(State, Key("refused"), new GrainState<Probe>(new Probe())));
        }

        await first;
        await Task.WhenAll(queued);
        var error = Assert.IsType<InvalidOperationException>(refused);
        Assert.Contains("MaxQueuedOperations", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("string")]
    [InlineData("integer")]
    [InlineData("guid")]
    [InlineData("guid+ext")]
    public async Task Either_provider_reads_and_writes_what_the_other_wrote(string keyKind)
    {
        var (adoNet, batched) = (Storage(AdoNet), Storage(Batched));
        var id = keyKind switch
        {
            "integer" => GrainId.Create(GrainType.Create("probe"), GrainIdKeyExtensions.CreateIntegerKey(Random.Shared.NextInt64(1, long.MaxValue))),
            "guid" => GrainId.Create(GrainType.Create("probe"), GrainIdKeyExtensions.CreateGuidKey(Guid.NewGuid())),
            "guid+ext" => GrainId.Create(GrainType.Create("probe"), GrainIdKeyExtensions.CreateGuidKey(Guid.NewGuid(), "ext")),
            _ => Key("cross"),
        };

        var byAdoNet = new GrainState<Probe>(new Probe { Value = 1, Note = "adonet" });
        await adoNet.WriteStateAsync(State, id, byAdoNet);
        var readByBatched = await Read(batched, id);
        Assert.Equal((1L, "adonet", byAdoNet.ETag), (readByBatched.State!.Value, readByBatched.State!.Note, readByBatched.ETag));

        readByBatched.State = new Probe { Value = 2, Note = "batched" };
        await batched.WriteStateAsync(State, id, readByBatched);
        var readByAdoNet = await Read(adoNet, id);
        Assert.Equal((2L, "batched", readByBatched.ETag), (readByAdoNet.State!.Value, readByAdoNet.State!.Note, readByAdoNet.ETag));

        // A stale ETag is a conflict whichever provider wrote last.
        await Assert.ThrowsAsync<InconsistentStateException>(() => adoNet.WriteStateAsync(State, id, new GrainState<Probe>(new Probe(), byAdoNet.ETag)));
        await Assert.ThrowsAsync<InconsistentStateException>(() => batched.WriteStateAsync(State, id, new GrainState<Probe>(new Probe(), byAdoNet.ETag)));

        // Cleared by one, read as cleared by the other (row kept: no state, no record, the version moved on); then written again.
        await batched.ClearStateAsync(State, id, readByBatched);
        var clearedForAdoNet = await Read(adoNet, id);
        Assert.Equal((0L, readByBatched.ETag, false), (clearedForAdoNet.State!.Value, clearedForAdoNet.ETag, clearedForAdoNet.RecordExists));
        clearedForAdoNet.State = new Probe { Value = 3 };
        await adoNet.WriteStateAsync(State, id, clearedForAdoNet);
        await adoNet.ClearStateAsync(State, id, clearedForAdoNet);
        var clearedForBatched = await Read(batched, id);
        Assert.Equal((0L, clearedForAdoNet.ETag, false), (clearedForBatched.State!.Value, clearedForBatched.ETag, clearedForBatched.RecordExists));

        // Both providers store the same informational hashes for a grain.
        var other = State + "-other";
        await adoNet.WriteStateAsync(other, id, new GrainState<Probe>(new Probe()));
        await batched.WriteStateAsync(other + "2", id, new GrainState<Probe>(new Probe()));
        var hashes = await Query($"SELECT DISTINCT grain_id_hash FROM orleans_grain_state WHERE state_name IN ('{other}', '{other}2')");
        Assert.Single(hashes);
        await batched.WriteStateAsync(other, GrainId.Create("probe", $"typehash-{Guid.NewGuid():N}"), new GrainState<Probe>(new Probe()));
        Assert.Single(await Query($"SELECT DISTINCT grain_type_hash FROM orleans_grain_state WHERE state_name = '{other}'"));
    }

    private IGrainStorage Storage(string name) => Host.Services.GetRequiredKeyedService<IGrainStorage>(name);

    private static GrainId Key(string prefix) => GrainId.Create("probe", $"{prefix}-{Guid.NewGuid():N}");

    private static async Task<GrainState<Probe>> Read(IGrainStorage storage, GrainId id)
    {
        var state = new GrainState<Probe>(new Probe());
        await storage.ReadStateAsync(State, id, state);
        return state;
    }

    private static async Task<(GrainId Id, GrainState<Probe> State)> Written(BatchedGrainStorage storage, GrainId id)
    {
        var state = new GrainState<Probe>(new Probe { Value = 42 });
        await storage.WriteStateAsync(State, id, state);
        return (id, state);
    }

    /// <summary>Holds <paramref name="id"/>'s row locked until disposed: a flush that writes it waits, and operations gather behind it.</summary>
    private async Task<IAsyncDisposable> LockRow(GrainId id)
    {
        var connection = new NpgsqlConnection(_database);
        await connection.OpenAsync();
        var transaction = await connection.BeginTransactionAsync();
        await using var command = new NpgsqlCommand("SELECT 1 FROM orleans_grain_state WHERE grain_id_ext = @ext FOR UPDATE", connection, transaction);
        command.Parameters.AddWithValue("ext", id.Key.ToString()!);
        Assert.Equal(1, await command.ExecuteScalarAsync());
        return new RowLock(connection, transaction);
    }

    private async Task Execute(string sql)
    {
        await using var connection = new NpgsqlConnection(_database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private async Task<List<object>> Query(string sql)
    {
        await using var connection = new NpgsqlConnection(_database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var values = new List<object>();
        while (await reader.ReadAsync())
        {
            values.Add(reader.GetValue(0));
        }

        return values;
    }

    private static async Task WaitUntil(Func<bool> condition, string what)
    {
        var giveUp = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < giveUp, $"waited {Patience} for {what}");
            await Task.Delay(10);
        }
    }

    private sealed class RowLock(NpgsqlConnection connection, NpgsqlTransaction transaction) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await transaction.CommitAsync();
            await transaction.DisposeAsync();
            await connection.DisposeAsync();
        }
    }

    [GenerateSerializer]
    public sealed class Probe
    {
        [Id(0)]
        public long Value { get; set; }

        [Id(1)]
        public string? Note { get; set; }
    }
}
