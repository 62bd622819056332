using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using Orleans.Configuration;
using Transactor.Persistence;

namespace Transactor.Tests.Postgres;

public sealed class PostgresConnectionsTests
{
    [Fact]
    public void Settings_left_at_npgsql_defaults_are_tuned()
    {
        var tuned = new NpgsqlConnectionStringBuilder(PostgresConnections.Tune("Host=db;Username=u;Database=ledger"));

        Assert.Equal(PostgresConnections.DefaultMaxAutoPrepare, tuned.MaxAutoPrepare);
        Assert.Equal(2, tuned.AutoPrepareMinUsages);
        Assert.True(tuned.NoResetOnClose);
        Assert.Equal(PostgresConnections.DefaultMaxPoolSize, tuned.MaxPoolSize);
        Assert.Equal("db", tuned.Host);
        Assert.Equal("ledger", tuned.Database);
    }

    [Fact]
    public void Settings_the_connection_string_gives_are_kept()
    {
        var tuned = new NpgsqlConnectionStringBuilder(PostgresConnections.Tune("Host=db;MaxPoolSize=7;Max Auto Prepare=3;No Reset On Close=false"));

        Assert.Equal(7, tuned.MaxPoolSize);
        Assert.Equal(3, tuned.MaxAutoPrepare);
        Assert.False(tuned.NoResetOnClose);
    }

    [Fact]
    public void Only_npgsql_providers_are_tuned()
    {
        var services = new ServiceCollection().AddOptions().AddPostgresConnectionTuning();
        services.Configure<AdoNetGrainStorageOptions>("ledger", o => (o.Invariant, o.ConnectionString) = (LedgerSchema.Invariant, "Host=db"));
        services.Configure<AdoNetGrainStorageOptions>("other", o => (o.Invariant, o.ConnectionString) = ("System.Data.SqlClient", "Server=db"));
        services.Configure<AdoNetReminderTableOptions>(o => (o.Invariant, o.ConnectionString) = (LedgerSchema.Invariant, "Host=db"));
        using var provider = services.BuildServiceProvider();

        var storage = provider.GetRequiredService<IOptionsMonitor<AdoNetGrainStorageOptions>>();
        Assert.True(new NpgsqlConnectionStringBuilder(storage.Get("ledger").ConnectionString).NoResetOnClose);
        Assert.Equal("Server=db", storage.Get("other").ConnectionString);
        var reminders = provider.GetRequiredService<IOptions<AdoNetReminderTableOptions>>().Value;
        Assert.Equal(PostgresConnections.DefaultMaxPoolSize, new NpgsqlConnectionStringBuilder(reminders.ConnectionString).MaxPoolSize);
    }
}
