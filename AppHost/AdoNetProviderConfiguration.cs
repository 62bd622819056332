using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Orleans;

namespace Transactor.AppHost;

/// <summary>
/// An Orleans provider (clustering, grain storage or reminders) on Orleans' ADO.NET providers over
/// a PostgreSQL database: a container's database here, an Azure flexible server's in docs/deploy.md.
/// </summary>
/// <remarks>
/// Handing the database resource straight to <c>WithClustering</c> and the like would name the
/// provider after the resource type (<c>PostgresDatabase</c>) and pass a <c>ServiceKey</c>; Orleans
/// knows neither. Its ADO.NET providers need <c>ProviderType=AdoNet</c>, an <c>Invariant</c> and a
/// connection string, here by name from <c>ConnectionStrings</c>: the environment
/// scripts/run-cluster.sh sets.
/// </remarks>
internal sealed class AdoNetProviderConfiguration(IResourceBuilder<IResourceWithConnectionString> database) : IProviderConfiguration
{
    private const string ProviderType = "AdoNet";

    // The ledger's grain storage: Transactor's batched provider (group commit across grains) on the
    // same schema and the same keys; clustering and reminders stay on Orleans' ADO.NET providers.
    // Aspire names sections with "__" (GrainStorage__ledger); ':' is accepted too.
    private const string LedgerStorageSection = "GrainStorage__ledger";
    private const string LedgerStorageProviderType = "Batched";

    // The ADO.NET invariant Orleans registers for Npgsql (Transactor.Persistence.LedgerSchema.Invariant).
    private const string Invariant = "Npgsql";

    public void ConfigureResource<T>(IResourceBuilder<T> resourceBuilder, string configSectionPath)
        where T : IResourceWithEnvironment
    {
        ArgumentNullException.ThrowIfNull(resourceBuilder);
        ArgumentException.ThrowIfNullOrEmpty(configSectionPath);

        var section = configSectionPath.Replace(":", "__", StringComparison.Ordinal);
        var prefix = "Orleans__" + section;
        resourceBuilder
            .WithEnvironment(prefix + "__ProviderType", section == LedgerStorageSection ? LedgerStorageProviderType : ProviderType)
            .WithEnvironment(prefix + "__Invariant", Invariant)
            .WithEnvironment(prefix + "__ConnectionName", database.Resource.Name)
            .WithReference(database);
    }
}
