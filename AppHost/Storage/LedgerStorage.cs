using Microsoft.Extensions.Configuration;

namespace Transactor.AppHost.Storage;

/// <summary>Where the ledger's PostgreSQL comes from (configuration key <see cref="LedgerStorage.Key"/>).</summary>
internal enum LedgerStorageKind
{
    /// <summary>Aspire's PostgreSQL container, with a data volume.</summary>
    Container,

    /// <summary>A server the AppHost starts from PostgreSQL binaries installed on this machine.</summary>
    Local,

    /// <summary>A server someone else runs, named by a connection string.</summary>
    ConnectionString,

    /// <summary>No database: silos keep everything in memory, lost when they stop.</summary>
    Memory,
}

/// <summary>The choice and why it was made, said in the AppHost's log and the dashboard.</summary>
internal sealed record LedgerStorageChoice(LedgerStorageKind Kind, string Reason, string? BinDirectory = null, string? ConnectionString = null);

internal static class LedgerStorage
{
    /// <summary><c>container</c>, <c>local</c>, <c>memory</c>, a connection string, or unset to choose.</summary>
    public const string Key = "Transactor:Postgres";

    /// <summary>The folder of PostgreSQL's server binaries for the local server (else found).</summary>
    public const string BinDirectoryKey = "Transactor:PostgresBinDirectory";

    /// <summary>The local server's data folder (else under the user's data folder).</summary>
    public const string DataDirectoryKey = "Transactor:PostgresDataDirectory";

    /// <summary>Short for <c>--Transactor:Postgres</c> on the command line.</summary>
    public const string Switch = "--storage";

    private static readonly TimeSpan s_runtimeProbeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The explicit setting when there is one; else the container when a container runtime answers;
    /// else a local server when PostgreSQL's binaries are installed. With none of them, an error that
    /// says what to install (or how to choose memory). Publishing always models the container.
    /// </summary>
    public static LedgerStorageChoice Choose(IConfiguration configuration, bool publishing)
    {
        var setting = configuration[Key]?.Trim();
        if (publishing)
        {
            return new(LedgerStorageKind.Container, "publishing: the deployment provides PostgreSQL");
        }

        switch (setting?.ToLowerInvariant())
        {
            case "container":
                return new(LedgerStorageKind.Container, $"{Key}=container");
            case "memory":
                return new(LedgerStorageKind.Memory, $"{Key}=memory");
            case "local":
                var configured = configuration[BinDirectoryKey];
                var bin = LocalPostgresInstallation.FindBinDirectory(configured) ?? throw new InvalidOperationException(
                    $"{Key}=local, but no PostgreSQL server binaries (postgres, initdb) were found{(configured is null ? " on PATH, through pg_config or in /usr/lib/postgresql" : $" in {configured}")}. {InstallHint}");
                return new(LedgerStorageKind.Local, $"{Key}=local", bin);
            case null or "" or "auto":
                break;
            default:
                return setting.Contains('=', StringComparison.Ordinal)
                    ? new(LedgerStorageKind.ConnectionString, $"{Key} is a connection string", ConnectionString: setting)
                    : throw new InvalidOperationException($"{Key} must be container, local, memory or a connection string, not '{setting}'.");
        }

        var runtime = configuration["ASPIRE_CONTAINER_RUNTIME"] is { Length: > 0 } named ? named : "docker";
        if (ContainerRuntimeAnswers(runtime, out var why))
        {
            return new(LedgerStorageKind.Container, $"the container runtime ({runtime}) answers");
        }

        if (LocalPostgresInstallation.FindBinDirectory(configuration[BinDirectoryKey]) is { } found)
        {
            return new(LedgerStorageKind.Local, $"no container runtime answers, {runtime}: {why}; PostgreSQL's server is installed in {found}", found);
        }

        throw new InvalidOperationException(
            $"The ledger needs PostgreSQL, and none can be started here: no container runtime answers ({runtime}: {why}), and no PostgreSQL server binaries were found. {InstallHint}");
    }

    private const string InstallHint =
        "Install PostgreSQL's server (Debian/Ubuntu: apt-get install postgresql; or set " + BinDirectoryKey + " to its bin folder), "
        + "or start Docker or Podman, or name a server with " + Key + "=\"Host=...;Database=...\". "
        + "To run without durability: dotnet run --project AppHost -- " + Switch + " memory";

    private static bool ContainerRuntimeAnswers(string runtime, out string why)
    {
        var probe = ExternalCommand.Run(runtime, ["info"], s_runtimeProbeTimeout);
        why = probe.Failure
            ?? (probe.Succeeded ? "running" : FirstLine(probe.Error) ?? $"'{runtime} info' exited with {probe.ExitCode}");
        return probe.Succeeded;
    }

    private static string? FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
}
