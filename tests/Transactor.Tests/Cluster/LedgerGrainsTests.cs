namespace Transactor.Tests.Cluster;

[Collection(ClusterTestGroup.Name)]
public sealed class LedgerGrainsTests(ClusterFixture fixture)
{
    [Fact]
    public async Task References_address_the_grains_that_GetGrain_addresses_on_every_call()
    {
        var client = fixture.Client;

        // Twice each: the first call works the grain type out, later calls reuse it.
        for (var i = 0; i < 2; i++)
        {
            var id = $"refs-{i}";
            Assert.Equal(client.GetGrain<IAccountGrain>("acct/" + id).GetGrainId(), client.GetAccount(id).GetGrainId());
            // The row of a movement's outcome is where earlier versions' record grains (type "transfer") kept it.
            Assert.Equal("transfer/xfer/" + id, LedgerGrains.TransferRowId(id).ToString());
            Assert.Equal(client.GetGrain<IRecoveryShardGrain>(RecoveryShards.Of(id)).GetGrainId(), client.GetRecoveryShard(id).GetGrainId());
            Assert.Equal(client.GetGrain<ITransferCoordinatorGrain>(0).GetGrainId(), client.GetCoordinator().GetGrainId());
            Assert.Equal(client.GetGrain<IAccountDirectoryGrain>(i + 1).GetGrainId(), client.GetAccountDirectory(i + 1).GetGrainId());
        }

        // And they reach them: an account opened through one reference is found through the other.
        var account = Ledger.NewId("refs");
        Assert.Equal(OpenAccountStatus.Opened, (await client.GetAccount(account).Open("EUR", null)).Status);
        var snapshot = await client.GetGrain<IAccountGrain>("acct/" + account).GetSnapshot();
        Assert.Equal("EUR", snapshot?.Currency);
    }
}
