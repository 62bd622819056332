using System.Collections.Concurrent;
using System.Diagnostics;

namespace Transactor.Tests.EndToEnd;

/// <summary>
/// One of the project's programs started as a separate process on loopback, as a user would run
/// it; killed (not stopped gracefully) on dispose. Keeps the last lines of its output for failure messages.
/// </summary>
internal sealed class ProcessHost : IAsyncDisposable
{
    private const int MaxOutputLines = 400;

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private ProcessHost(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public bool HasExited => _process.HasExited;

    public string Output => string.Join('\n', _output);

    /// <summary>Starts the built program <paramref name="project"/> (for example Transactor.Silo) with <paramref name="environment"/> and <paramref name="arguments"/>.</summary>
    public static ProcessHost Start(string project, IReadOnlyDictionary<string, string> environment, IEnumerable<string>? arguments = null)
    {
        var dll = Repo.BuiltAssembly(project);
        return Launch(project, dll, Path.GetDirectoryName(dll)!, "Production", environment, arguments ?? []);
    }

    /// <summary>
    /// Starts the built AppHost as `dotnet run --project AppHost` would (Development environment),
    /// with <paramref name="environment"/> in place of a launch profile.
    /// </summary>
    public static ProcessHost StartAppHost(IReadOnlyDictionary<string, string> environment, IEnumerable<string> arguments)
    {
        var dll = Path.Combine(Repo.Root, "AppHost", "bin", Repo.Configuration, "net10.0", "Transactor.AppHost.dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"Build the AppHost first (dotnet build -c {Repo.Configuration}).", dll);
        }

        return Launch("Transactor.AppHost", dll, Path.Combine(Repo.Root, "AppHost"), "Development", environment, arguments);
    }

    private static ProcessHost Launch(
        string name, string dll, string workingDirectory, string hostEnvironment, IReadOnlyDictionary<string, string> environment, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo("dotnet", [dll, .. arguments])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["DOTNET_ENVIRONMENT"] = hostEnvironment;
        start.Environment["ASPNETCORE_ENVIRONMENT"] = hostEnvironment;
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var host = new ProcessHost(name, process);
        process.OutputDataReceived += (_, e) => host.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => host.Keep(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return host;
    }

    /// <summary>Waits until GET <paramref name="url"/> answers 200, the process exits, or <paramref name="timeout"/> passes.</summary>
    public async Task WaitUntilHealthy(string url, TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode} before {url} was healthy:\n{Output}");
            }

            try
            {
                using var response = await http.GetAsync(url);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Slow to answer while starting.
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"{Name}: {url} not healthy after {timeout}:\n{Output}");
    }

    /// <summary>The exit code, or null when the program still runs after <paramref name="timeout"/>.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Sends the process a signal by name (TERM for a graceful stop, as an orchestrator or Ctrl+C would).</summary>
    public async Task SignalAsync(string signal)
    {
        // .NET can send only SIGKILL to another process; kill(1) is on every Linux machine.
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + signal, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("Could not run kill.");
        await kill.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        _output.Enqueue(line);
        while (_output.Count > MaxOutputLines && _output.TryDequeue(out _))
        {
        }
    }
}

/// <summary>Where the repository and its built programs are.</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    /// <summary>The configuration (Debug or Release) these tests were built in; the programs are built alike.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";

    public static string BuiltAssembly(string project)
    {
        var path = Path.Combine(Root, "src", project, "bin", Configuration, "net10.0", project + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"Build {project} first (dotnet build -c {Configuration}).", path);
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Transactor.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Transactor.sln not found above " + AppContext.BaseDirectory);
    }
}
