using System.Diagnostics;

namespace Transactor.AppHost.Storage;

/// <summary>What a program the AppHost ran said: null <see cref="ExitCode"/> when it was not found or did not end in time.</summary>
internal sealed record ExternalCommandResult(int? ExitCode, string Output, string Error, string? Failure)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>Runs a program to its end (PostgreSQL's tools, a container runtime's probe), bounded in time.</summary>
internal static class ExternalCommand
{
    public static ExternalCommandResult Run(string program, IReadOnlyList<string> arguments, TimeSpan timeout, string? standardInput = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = standardInput is not null,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(start)!;
            if (standardInput is not null)
            {
                process.StandardInput.Write(standardInput);
                process.StandardInput.Close();
            }

            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                return new(null, string.Empty, string.Empty, $"'{program} {string.Join(' ', arguments)}' did not end within {timeout.TotalSeconds} s");
            }

            return new(process.ExitCode, output.Result, error.Result, null);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return new(null, string.Empty, string.Empty, "not installed");
        }
    }
}
