using System.Diagnostics;
using System.Globalization;
using Npgsql;
using Transactor.Tests.Api;

namespace Transactor.Tests.Postgres;

/// <summary>
/// A real PostgreSQL for the durability tests: the server named by TRANSACTOR_TEST_POSTGRES (a
/// connection string) when set, otherwise a throwaway server started from the installed binaries
/// (initdb + pg_ctl on a free loopback port, as the postgres user when running as root). Fails
/// loudly when neither is possible: these tests never skip.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    public const string ConnectionStringVariable = "TRANSACTOR_TEST_POSTGRES";

    private readonly string? _dataDirectory;
    private readonly string? _binDirectory;
    private readonly string _adminConnectionString;
    private readonly string? _serverOptions;
    private bool _stopped;

    private PostgresServer(string adminConnectionString, string? dataDirectory, string? binDirectory, string? serverOptions)
    {
        _adminConnectionString = adminConnectionString;
        _dataDirectory = dataDirectory;
        _binDirectory = binDirectory;
        _serverOptions = serverOptions;
    }

    /// <param name="durable">Keep PostgreSQL's <c>fsync</c> and <c>full_page_writes</c> on (a throwaway server turns them off for speed).</param>
    public static async Task<PostgresServer> StartAsync(bool durable = false)
    {
        if (Environment.GetEnvironmentVariable(ConnectionStringVariable) is { Length: > 0 } given)
        {
            return new PostgresServer(given, null, null, null);
        }

        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb"))).OrderDescending().FirstOrDefault()
            : null;
        if (bin is null)
        {
            throw new InvalidOperationException(
                $"PostgreSQL server binaries not found under /usr/lib/postgresql. Install them (apt-get install postgresql) or set {ConnectionStringVariable}.");
        }

        var data = Path.Combine(Path.GetTempPath(), $"transactor-pg-{Guid.NewGuid():N}");
        Directory.CreateDirectory(data);
        var asRoot = Environment.UserName == "root";
        if (asRoot)
        {
            await Run("chown", ["postgres:postgres", data]);
        }

        var port = ApiFixture.FreePort();
        await RunAs(asRoot, Path.Combine(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        var options = string.Join(' ',
            $"-p {port.ToString(CultureInfo.InvariantCulture)}", $"-k {data}", "-c listen_addresses=127.0.0.1",
            "-c max_connections=1000", durable ? "-c fsync=on" : "-c fsync=off -c full_page_writes=off");
        await RunAs(asRoot, Path.Combine(bin, "pg_ctl"), ["-D", data, "-o", options, "-l", Path.Combine(data, "server.log"), "-w", "-t", "60", "start"]);
        return new PostgresServer($"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres", data, bin, options);
    }

    /// <summary>Stops the server as a crash would (<c>pg_ctl stop -m immediate</c>); only a throwaway server can be.</summary>
    public async Task StopImmediatelyAsync()
    {
        await RunAs(Environment.UserName == "root", PgCtl(), ["-D", _dataDirectory!, "-m", "immediate", "-w", "stop"]);
        _stopped = true;
    }

    /// <summary>Starts a server stopped by <see cref="StopImmediatelyAsync"/> again, on the same port and data.</summary>
    public async Task StartAgainAsync()
    {
        await RunAs(Environment.UserName == "root", PgCtl(), ["-D", _dataDirectory!, "-o", _serverOptions!, "-l", Path.Combine(_dataDirectory!, "server.log"), "-w", "-t", "60", "start"]);
        _stopped = false;
    }

    private string PgCtl() => _binDirectory is not null
        ? Path.Combine(_binDirectory, "pg_ctl")
        : throw new InvalidOperationException($"The server named by {ConnectionStringVariable} cannot be stopped by a test; unset it to use a throwaway server.");

    /// <summary>Creates a new, empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "transactor")
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 33, 63)];
        await using (var connection = new NpgsqlConnection(_adminConnectionString))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await create.ExecuteNonQueryAsync();
        }

        // Each test database gets its own pool; idle connections are closed soon, so the pools of
        // earlier tests do not use up the server's connection slots.
        return new NpgsqlConnectionStringBuilder(_adminConnectionString)
        {
            Database = name,
            MaxPoolSize = 100,
            ConnectionIdleLifetime = 5,
            ConnectionPruningInterval = 2,
        }.ConnectionString;
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_dataDirectory is null || _binDirectory is null)
        {
            return;
        }

        try
        {
            if (!_stopped)
            {
                await RunAs(Environment.UserName == "root", Path.Combine(_binDirectory, "pg_ctl"), ["-D", _dataDirectory, "-m", "immediate", "-w", "stop"]);
            }
        }
        finally
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }

    private static Task RunAs(bool asRoot, string program, string[] arguments) =>
        asRoot ? Run("runuser", ["-u", "postgres", "--", program, .. arguments]) : Run(program, arguments);

    private static async Task Run(string program, string[] arguments)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited {process.ExitCode}:\n{await stdout}\n{await stderr}");
        }
    }
}
