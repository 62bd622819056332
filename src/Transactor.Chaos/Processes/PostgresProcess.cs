using System.Diagnostics;
using System.Globalization;

namespace Transactor.Chaos.Processes;

/// <summary>
/// A throwaway PostgreSQL server that writes durably (<c>fsync=on</c>, <c>synchronous_commit=on</c>),
/// run in the foreground as a child of the runner rather than daemonized by <c>pg_ctl start</c>, so
/// that it dies with the runner. <see cref="CrashAsync"/> is <c>pg_ctl stop -m immediate</c>:
/// no checkpoint, and recovery from the write-ahead log at the next start.
/// </summary>
internal sealed class PostgresProcess(string dataDirectory, int port, string logFile) : IAsyncDisposable
{
    public const string Database = "transactor";

    private static readonly bool s_asRoot = Environment.UserName == "root";
    private readonly string _bin = FindBinaries();
    private ChildProcess? _server;

    public string ConnectionString => $"Host=127.0.0.1;Port={port.ToString(CultureInfo.InvariantCulture)};Username=postgres;Database={Database}";

    /// <summary>Creates the cluster's files (once), starts the server and creates the ledger's database.</summary>
    public async Task InitializeAsync(CancellationToken cancellation)
    {
        Directory.CreateDirectory(dataDirectory);
        if (s_asRoot)
        {
            await Run("chown", ["postgres:postgres", dataDirectory], cancellation);
        }

        await RunAsOwner("initdb", ["-D", dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8"], cancellation);
        await StartAsync(cancellation);
        await Run(Path.Combine(_bin, "psql"), ["-h", "127.0.0.1", "-p", Port, "-U", "postgres", "-d", "postgres", "-c", $"CREATE DATABASE {Database}"], cancellation);
    }

    public async Task StartAsync(CancellationToken cancellation)
    {
        string[] server =
        [
            Path.Combine(_bin, "postgres"), "-D", dataDirectory, "-p", Port, "-k", dataDirectory,
            "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
            "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on",
        ];
        _server = s_asRoot
            ? ChildProcess.Start("runuser", ["-u", "postgres", "--", .. server], new Dictionary<string, string>(), logFile)
            : ChildProcess.Start(server[0], server[1..], new Dictionary<string, string>(), logFile);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (true)
        {
            if (_server.HasExited)
            {
                throw new InvalidOperationException($"PostgreSQL exited with {_server.ExitCode} while starting; see {logFile}.");
            }

            var ready = await TryRun(Path.Combine(_bin, "pg_isready"), ["-h", "127.0.0.1", "-p", Port, "-t", "2"], cancellation);
            if (ready)
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"PostgreSQL did not accept connections within 90 s; see {logFile}.");
            }

            await Task.Delay(200, cancellation);
        }
    }

    /// <summary>Runs <paramref name="sql"/> in the ledger's database.</summary>
    public Task ExecuteAsync(string sql, CancellationToken cancellation) =>
        Run(Path.Combine(_bin, "psql"), ["-h", "127.0.0.1", "-p", Port, "-U", "postgres", "-d", Database, "-v", "ON_ERROR_STOP=1", "-c", sql], cancellation);

    /// <summary><c>pg_ctl stop -m immediate</c>: every backend quits at once, as in a crash.</summary>
    public async Task CrashAsync(CancellationToken cancellation)
    {
        if (_server is null)
        {
            return;
        }

        await RunAsOwner("pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "-t", "60", "stop"], cancellation);
        if (!await _server.WaitForExitAsync(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException("PostgreSQL did not exit after pg_ctl stop -m immediate.");
        }

        await _server.DisposeAsync();
        _server = null;
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is null)
        {
            return;
        }

        try
        {
            // Stopped by pg_ctl, the server removes its shared memory; killed, it would leave it behind.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await CrashAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or OperationCanceledException)
        {
            // Killed below.
        }

        if (_server is not null)
        {
            await _server.DisposeAsync();
            _server = null;
        }
    }

    private string Port => port.ToString(CultureInfo.InvariantCulture);

    private static string FindBinaries() =>
        (Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb"))).OrderDescending().FirstOrDefault()
            : null)
        ?? throw new InvalidOperationException("PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install postgresql.");

    private Task RunAsOwner(string tool, string[] arguments, CancellationToken cancellation) =>
        s_asRoot
            ? Run("runuser", ["-u", "postgres", "--", Path.Combine(_bin, tool), .. arguments], cancellation)
            : Run(Path.Combine(_bin, tool), arguments, cancellation);

    private static async Task Run(string program, string[] arguments, CancellationToken cancellation)
    {
        var (code, output) = await Execute(program, arguments, cancellation);
        if (code != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited {code}:\n{output}");
        }
    }

    private static async Task<bool> TryRun(string program, string[] arguments, CancellationToken cancellation) =>
        (await Execute(program, arguments, cancellation)).Code == 0;

    private static async Task<(int Code, string Output)> Execute(string program, string[] arguments, CancellationToken cancellation)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // The postgres user must be able to enter the working directory.
            WorkingDirectory = Path.GetTempPath(),
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellation);
        var stderr = process.StandardError.ReadToEndAsync(cancellation);
        await process.WaitForExitAsync(cancellation);
        return (process.ExitCode, await stdout + await stderr);
    }
}
