using Aspire.Hosting.ApplicationModel;

namespace Transactor.AppHost.Storage;

/// <summary>
/// A PostgreSQL server the AppHost runs from binaries installed on this machine: the path for
/// machines with no container runtime. Its connection string has the same shape as the container's,
/// so <c>WithReference</c>, <c>WaitFor</c> and the Orleans providers do not know which one they got.
/// </summary>
internal sealed class LocalPostgresServerResource(string name, LocalPostgresInstallation installation, string password)
    : ExecutableResource(name, command: "/bin/sh", workingDirectory: installation.DataRoot), IResourceWithConnectionString
{
    internal const string EndpointName = "tcp";

    /// <summary>The PostgreSQL role the ledger connects as: the superuser initdb creates.</summary>
    internal const string UserName = "postgres";

    private EndpointReference? _endpoint;

    public LocalPostgresInstallation Installation { get; } = installation;

    public EndpointReference Endpoint => _endpoint ??= new(this, EndpointName);

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={Endpoint.Property(EndpointProperty.Host)};Port={Endpoint.Property(EndpointProperty.Port)};Username={UserName};Password={password}");
}

/// <summary>A database on a <see cref="LocalPostgresServerResource"/>, created when its data directory is initialised.</summary>
internal sealed class LocalPostgresDatabaseResource(string name, string databaseName, LocalPostgresServerResource parent)
    : Resource(name), IResourceWithParent<LocalPostgresServerResource>, IResourceWithConnectionString
{
    public LocalPostgresServerResource Parent { get; } = parent;

    public string DatabaseName { get; } = databaseName;

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"{Parent};Database={DatabaseName}");
}
