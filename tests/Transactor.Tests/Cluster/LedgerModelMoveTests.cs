using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Storage;
using Transactor.Domain;
using Transactor.Grains;

namespace Transactor.Tests.Cluster;

/// <summary>
/// The ledger model moved from Transactor.Abstractions to Transactor.Ledger (issue #22). Rows that
/// earlier versions wrote still load: binary rows name types by their [Alias], JSON rows by type and
/// assembly name, which the forwarding in Transactor.Abstractions keeps resolving.
/// </summary>
[Collection(ClusterTestGroup.Name)]
public sealed class LedgerModelMoveTests(ClusterFixture fixture)
{
    [Fact]
    public void A_json_account_row_that_names_the_earlier_assembly_still_loads()
    {
        var services = fixture.Client.ServiceProvider;
        var json = services.GetRequiredService<OrleansJsonSerializer>();
        var state = new AccountState
        {
            Currency = "EUR",
            AvailableMinor = 1_234,
            ReservedMinor = 5,
            Pending = { ["t-1"] = new PendingEntry(EntrySide.Debit, 5, Epoch: 2) },
            Version = 7,
        };
        var written = Encoding.UTF8.GetString(new JsonGrainStorageSerializer(json).Serialize(state).ToArray());
        Assert.Contains(", Transactor.Ledger", written, StringComparison.Ordinal);
        var earlier = written.Replace(", Transactor.Ledger", ", Transactor.Abstractions", StringComparison.Ordinal);

        var read = new LedgerStorageSerializer(services.GetRequiredService<Serializer>(), json).Deserialize<AccountState>(BinaryData.FromString(earlier))!;

        Assert.Equal(("EUR", 1_234L, 5L, 7L), (read.Currency, read.AvailableMinor, read.ReservedMinor, read.Version));
        Assert.Equal(new PendingEntry(EntrySide.Debit, 5, Epoch: 2), read.Pending["t-1"]);
        new AccountBook("acct", read).AssertInvariants();
    }

    [Fact]
    public void The_ledger_model_references_no_orleans_runtime()
    {
        var references = typeof(AccountBook).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.DoesNotContain(references, name => name is "Orleans.Core" or "Orleans.Core.Abstractions" or "Orleans.Runtime");
        Assert.Equal("Transactor.Ledger", typeof(AccountBook).Assembly.GetName().Name);
    }
}
