namespace Transactor.Chaos.Processes;

/// <summary>
/// One silo or the API, as a process that the runner starts, kills, pauses and restarts; each start
/// gets the same program and environment.
/// </summary>
internal sealed class LedgerNode(string name, string assembly, IReadOnlyDictionary<string, string> environment, Uri healthUrl, string logFile) : IAsyncDisposable
{
    private static readonly TimeSpan HealthPollInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>Held by whoever changes the process (the nemesis or the supervisor), so that they do not both restart it.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    public string Name { get; } = name;

    public ChildProcess? Process { get; private set; }

    public bool Exited => Process is null || Process.HasExited;

    /// <summary>Starts the process; callers that need it up then call <see cref="WaitHealthyAsync"/>.</summary>
    public void Start()
    {
        if (Process is { HasExited: false })
        {
            throw new InvalidOperationException($"{Name} is already running.");
        }

        Process = ChildProcess.Start("dotnet", [assembly], environment, logFile, Path.GetDirectoryName(assembly));
    }

    /// <summary>Waits until the health endpoint answers 200. False when the process exits first or <paramref name="timeout"/> passes.</summary>
    public async Task<bool> WaitHealthyAsync(TimeSpan timeout, CancellationToken cancellation)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Exited)
            {
                return false;
            }

            try
            {
                using var response = await http.GetAsync(healthUrl, cancellation);
                if (response.IsSuccessStatusCode)
                {
                    return true;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException) when (!cancellation.IsCancellationRequested)
            {
                // Slow to answer while it starts.
            }

            await Task.Delay(HealthPollInterval, cancellation);
        }

        return false;
    }

    public async Task KillAsync()
    {
        if (Process is { } process)
        {
            await process.DisposeAsync();
            Process = null;
        }
    }

    public Task PauseAsync() => Process?.PauseAsync() ?? Task.CompletedTask;

    public Task ResumeAsync() => Process?.ResumeAsync() ?? Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        Gate.Dispose();
    }
}
