using System.Globalization;
using System.Security.Cryptography;

namespace Transactor.AppHost.Storage;

/// <summary>
/// PostgreSQL's server binaries on this machine and the data directory the AppHost keeps for them:
/// found, initialised on first use, owned by the user the server runs as.
/// </summary>
/// <remarks>
/// PostgreSQL refuses to run as root. When the AppHost runs as root, the server runs as the
/// <c>postgres</c> user that distribution packages create, through <c>setpriv</c>, which replaces
/// its own process rather than forking: the process the orchestrator watches is the postmaster, so
/// stopping the AppHost stops the server.
/// </remarks>
internal sealed class LocalPostgresInstallation
{
    private const string ServiceUser = "postgres";
    private static readonly TimeSpan s_toolTimeout = TimeSpan.FromMinutes(2);

    private LocalPostgresInstallation(string binDirectory, string dataRoot, bool runAsServiceUser)
    {
        BinDirectory = binDirectory;
        DataRoot = dataRoot;
        RunAsServiceUser = runAsServiceUser;
    }

    /// <summary>The folder that holds <c>postgres</c> and <c>initdb</c>.</summary>
    public string BinDirectory { get; }

    /// <summary>Holds <c>data/</c> (the cluster) and <c>password</c> (the superuser's, mode 600).</summary>
    public string DataRoot { get; }

    public string DataDirectory => Path.Combine(DataRoot, "data");

    private string PasswordFile => Path.Combine(DataRoot, "password");

    /// <summary>True when this process is root and the server must run as <c>postgres</c>.</summary>
    public bool RunAsServiceUser { get; }

    /// <summary>
    /// The binaries in <paramref name="configuredBinDirectory"/> when given, else those
    /// <c>pg_config --bindir</c> names, else those on PATH, else the newest of Debian's
    /// /usr/lib/postgresql/*/bin. Null when there are none.
    /// </summary>
    public static string? FindBinDirectory(string? configuredBinDirectory)
    {
        if (OperatingSystem.IsWindows())
        {
            return null; // the server is started through /bin/sh (and setpriv as root): Linux and macOS only
        }

        if (!string.IsNullOrWhiteSpace(configuredBinDirectory))
        {
            return HasServerBinaries(configuredBinDirectory) ? configuredBinDirectory : null;
        }

        if (TryRun("pg_config", ["--bindir"], out var bindir) && HasServerBinaries(bindir.Trim()))
        {
            return bindir.Trim();
        }

        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .FirstOrDefault(HasServerBinaries);
        if (onPath is not null)
        {
            return onPath;
        }

        const string Debian = "/usr/lib/postgresql";
        return Directory.Exists(Debian)
            ? Directory.GetDirectories(Debian)
                .Select(version => Path.Combine(version, "bin"))
                .Where(HasServerBinaries)
                .OrderByDescending(bin => int.TryParse(Path.GetFileName(Path.GetDirectoryName(bin)), NumberStyles.None, CultureInfo.InvariantCulture, out var major) ? major : 0)
                .FirstOrDefault()
            : null;
    }

    /// <summary>
    /// The default data folder: under the user's data folder, or under /var/lib when root (the
    /// <c>postgres</c> user cannot enter root's home).
    /// </summary>
    public static string DefaultDataRoot() => Environment.IsPrivilegedProcess
        ? "/var/lib/transactor/apphost-postgres"
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "transactor", "apphost-postgres");

    /// <summary>
    /// Prepares <paramref name="dataRoot"/> for a server with <paramref name="databaseName"/> in it,
    /// running initdb on first use, and returns the installation with the superuser's password.
    /// </summary>
    public static (LocalPostgresInstallation Installation, string Password) Prepare(string binDirectory, string dataRoot, string databaseName)
    {
        var asServiceUser = Environment.IsPrivilegedProcess;
        if (asServiceUser && !TryRun("id", ["-u", ServiceUser], out _))
        {
            throw new InvalidOperationException(
                $"PostgreSQL refuses to run as root, and there is no '{ServiceUser}' user to run it as. Install Debian's 'postgresql' package (it creates the user), or run the AppHost as a normal user.");
        }

        var installation = new LocalPostgresInstallation(binDirectory, Path.GetFullPath(dataRoot), asServiceUser);
        Directory.CreateDirectory(installation.DataRoot);
        if (!File.Exists(Path.Combine(installation.DataDirectory, "PG_VERSION")))
        {
            installation.Initialise(databaseName);
        }

        return (installation, File.ReadAllText(installation.PasswordFile).Trim());
    }

    /// <summary>The command line that runs the server in the foreground, stderr folded into stdout.</summary>
    public IEnumerable<string> ServerArguments(int maxConnections)
    {
        // sh runs only to fold stderr (where PostgreSQL logs) into stdout, which the dashboard does
        // not show as errors; exec keeps one process, so the orchestrator's signal reaches the server.
        yield return "-c";
        yield return "exec \"$@\" 2>&1";
        yield return "postgres-server";
        foreach (var part in AsOwner(Path.Combine(BinDirectory, "postgres")))
        {
            yield return part;
        }

        // The port comes from PGPORT, which the orchestrator sets. Loopback only, no Unix socket.
        yield return "-D";
        yield return DataDirectory;
        yield return "-c";
        yield return "listen_addresses=127.0.0.1";
        yield return "-c";
        yield return "unix_socket_directories=";
        yield return "-c";
        yield return FormattableString.Invariant($"max_connections={maxConnections}");
    }

    private void Initialise(string databaseName)
    {
        // A half-made data directory from an interrupted first run is started again from nothing.
        if (Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory, recursive: true);
        }

        var password = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();
        File.WriteAllText(PasswordFile, password);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(PasswordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        // initdb reads the password from a file the server's user can read; it is removed after.
        var initPassword = Path.Combine(DataRoot, "initdb-password");
        File.WriteAllText(initPassword, password);
        try
        {
            if (RunAsServiceUser)
            {
                Run("chown", [ServiceUser, DataRoot, initPassword]);
            }

            Run("/bin/sh", ["-c", "exec \"$@\" 2>&1", "initdb", .. AsOwner(Path.Combine(BinDirectory, "initdb")),
                "-D", DataDirectory, "-U", LocalPostgresServerResource.UserName, "--auth=scram-sha-256",
                "--pwfile=" + initPassword, "-E", "UTF8", "--no-instructions"]);

            // Single-user mode creates the database before any server listens.
            Run("/bin/sh", ["-c", "exec \"$@\" 2>&1", "postgres-single", .. AsOwner(Path.Combine(BinDirectory, "postgres")),
                "--single", "-D", DataDirectory, "postgres"], standardInput: $"CREATE DATABASE \"{databaseName}\";\n");
        }
        finally
        {
            File.Delete(initPassword);
        }
    }

    private IEnumerable<string> AsOwner(string program) => RunAsServiceUser
        ? ["setpriv", "--reuid=" + ServiceUser, "--regid=" + ServiceUser, "--init-groups", "--", program]
        : [program];

    private static bool HasServerBinaries(string directory) =>
        File.Exists(Path.Combine(directory, "postgres")) && File.Exists(Path.Combine(directory, "initdb"));

    private static void Run(string program, IReadOnlyList<string> arguments, string? standardInput = null)
    {
        if (!TryRun(program, arguments, out var output, standardInput))
        {
            throw new InvalidOperationException($"'{program} {string.Join(' ', arguments)}' failed while preparing the local PostgreSQL server:\n{output}");
        }
    }

    private static bool TryRun(string program, IReadOnlyList<string> arguments, out string output, string? standardInput = null)
    {
        var result = ExternalCommand.Run(program, arguments, s_toolTimeout, standardInput);
        output = result.Failure ?? result.Output + result.Error;
        return result.Succeeded;
    }
}
