using Orleans.TestingHost;

namespace Transactor.Tests.Cluster;

/// <summary>A cluster of one silo set up by <typeparamref name="TConfigurator"/>, for the tests of one class.</summary>
public abstract class OneSiloCluster<TConfigurator> : IAsyncLifetime
    where TConfigurator : ISiloConfigurator, new()
{
    protected TestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<TConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}
