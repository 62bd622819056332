using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Globalization;
using Transactor.Domain;

namespace Transactor.Cli;

/// <summary>Exit codes of the <c>transactor</c> tool.</summary>
public static class ExitCodes
{
    /// <summary>Done; malformed rows, if any, were reported and skipped.</summary>
    public const int Success = 0;

    /// <summary>The input is unusable: <c>--strict</c> met a malformed row, or the header is wrong.</summary>
    public const int BadInput = 1;

    /// <summary>The input file cannot be opened (or, for <c>keys</c>, the API cannot be reached).</summary>
    public const int CannotOpen = 2;

    /// <summary><c>keys</c>: the API refused the request (its problem document is on standard error).</summary>
    public const int Refused = 3;
}

/// <summary>The process's standard streams; tests give their own.</summary>
/// <param name="OpenInput">Standard input, read when the file is <c>-</c>.</param>
/// <param name="OpenOutput">Where results go.</param>
/// <param name="Error">Where errors, progress and the summary go.</param>
/// <param name="ErrorIsTerminal">Whether a person watches standard error: progress lines are only for them.</param>
public sealed record StandardStreams(Func<Stream> OpenInput, Func<Stream> OpenOutput, TextWriter Error, bool ErrorIsTerminal);

/// <summary>The <c>transactor</c> command line: <c>process</c> and <c>generate</c>.</summary>
public static class TransactorCommand
{
    /// <summary>What <c>process</c> does, in the list of commands.</summary>
    public const string ProcessDescription =
        "Apply a CSV of transactions to accounts and write their balances (process --help shows the rules).";

    /// <summary>Rules and the deviation from the classic toy engine, shown by <c>process --help</c>.</summary>
    public const string ProcessRules = """
        Rules:
          Reads a CSV of transactions (header: type, client, tx, amount) and writes each client's balances
          as CSV to standard output: client,available,held,total,locked, sorted by client, amounts with four
          decimal places. Malformed rows, progress and a summary go to standard error.

          client is a u16, tx a u32, amount a decimal with at most four places (1, 1.5, 2.7500), left empty
          or out for dispute, resolve and chargeback. Spaces around fields are allowed.
            deposit     credits available and total.
            withdrawal  debits available and total when available covers it.
            dispute     moves a deposit's amount from available to held.
            resolve     moves a disputed deposit's amount from held back to available.
            chargeback  removes a disputed deposit's amount from held and total, and locks the account.
          Ignored (nothing changes): a dispute, resolve or chargeback of a tx that does not exist, is another
          client's, or is in the wrong state; a deposit or withdrawal whose tx an earlier deposit or
          withdrawal row used (whether that row applied or not); a zero or negative amount; a deposit that
          would overflow the balance; any row for a locked account.

          Deviation from the classic engine: in Transactor no available balance ever goes negative, so a
          dispute of a deposit larger than the client's current available balance is IGNORED, not applied.

          A malformed row (unknown type, bad number, missing field, more than four decimal places, client
          or tx out of range) is reported with its line number and skipped; --strict stops at the first one
          instead, writes nothing and exits 1. Exit codes: 0 done, 1 bad input, 2 file not found.

          Example:
            transactor generate --rows 1000000 --clients 10000 --seed 1 > transactions.csv
            transactor process transactions.csv > accounts.csv
        """;

    /// <summary>Builds the root command, reading and writing through <paramref name="streams"/>; <paramref name="keysHandler"/> sends <c>keys</c>' requests (tests give their own).</summary>
    public static RootCommand Create(StandardStreams streams, Func<HttpMessageHandler>? keysHandler = null)
    {
        ArgumentNullException.ThrowIfNull(streams);
        var root = new RootCommand("Transactor tools: apply a CSV of transactions to accounts, generate one, or manage the API's keys.");
        var process = ProcessCommand(streams);
        root.Subcommands.Add(process);
        root.Subcommands.Add(GenerateCommand(streams));
        root.Subcommands.Add(KeysCommand.Create(streams, keysHandler));

        // The rules are long: the list of commands shows one line, 'process --help' adds them after its options.
        foreach (var help in root.Options.OfType<HelpOption>())
        {
            if (help.Action is HelpAction standard)
            {
                help.Action = new HelpWithRules(standard, process);
            }
        }

        return root;
    }

    private static Command ProcessCommand(StandardStreams streams)
    {
        var file = new Argument<string>("file") { Description = "The CSV to read, or - for standard input." };
        var strict = new Option<bool>("--strict") { Description = "Stop at the first malformed row with exit code 1, writing nothing." };
        var partitions = new Option<int>("--partitions")
        {
            Description = $"Worker partitions; each owns the clients with id % partitions equal to its index (1-{BatchOptions.MaxPartitions}).",
            DefaultValueFactory = _ => new BatchOptions().Partitions,
        };
        partitions.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > BatchOptions.MaxPartitions)
            {
                result.AddError($"--partitions must be from 1 to {BatchOptions.MaxPartitions}.");
            }
        });
        var quiet = new Option<bool>("--quiet") { Description = "No progress and no summary on standard error; malformed rows are still reported." };
        var command = new Command("process", ProcessDescription) { file, strict, partitions, quiet };
        command.SetAction(async (parse, cancellation) =>
        {
            var options = new BatchOptions
            {
                Partitions = parse.GetValue(partitions),
                Strict = parse.GetValue(strict),
                ProgressInterval = !parse.GetValue(quiet) && streams.ErrorIsTerminal ? TimeSpan.FromSeconds(1) : null,
            };
            var path = parse.GetValue(file)!;
            try
            {
                Stream input;
                try
                {
                    input = path == "-"
                        ? streams.OpenInput()
                        : new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    await streams.Error.WriteLineAsync($"transactor: cannot open '{path}': {e.Message}");
                    return ExitCodes.CannotOpen;
                }

                await using (input)
                await using (var output = streams.OpenOutput())
                {
                    var summary = await new BatchEngine(options).RunAsync(input, output, streams.Error, cancellation);
                    if (!parse.GetValue(quiet))
                    {
                        await streams.Error.WriteLineAsync(Describe(summary));
                    }

                    return summary.Status == BatchStatus.Completed ? ExitCodes.Success : ExitCodes.BadInput;
                }
            }
            finally
            {
                await streams.Error.FlushAsync(cancellation);
            }
        });
        return command;
    }

    private static Command GenerateCommand(StandardStreams streams)
    {
        var rows = new Option<long>("--rows") { Description = "Data rows to write.", Required = true };
        var clients = new Option<int>("--clients") { Description = $"Clients, with ids 1 to this (at most {GenerateOptions.MaxClients}).", Required = true };
        var seed = new Option<int>("--seed") { Description = "Seed: the same seed, rows and clients make the same file.", DefaultValueFactory = _ => 1 };
        rows.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<long>() < 0)
            {
                result.AddError("--rows must not be negative.");
            }
        });
        clients.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > GenerateOptions.MaxClients)
            {
                result.AddError($"--clients must be from 1 to {GenerateOptions.MaxClients}.");
            }
        });
        var command = new Command(
            "generate",
            "Write a realistic stress file of transactions to standard output: deposits, withdrawals, disputes, resolves, chargebacks, and some rows that are ignored or malformed.")
        {
            rows, clients, seed,
        };
        command.SetAction((parse, cancellation) =>
        {
            using var output = streams.OpenOutput();
            CsvGenerator.Write(output, new GenerateOptions(parse.GetValue(rows), parse.GetValue(clients), parse.GetValue(seed)), cancellation);
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    /// <summary>The one-line summary written to standard error at the end of a run.</summary>
    public static string Describe(BatchSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        var ignored = Enum.GetValues<BatchOutcome>()
            .Where(o => o != BatchOutcome.Applied && summary.Outcomes[(int)o] > 0)
            .Select(o => string.Create(CultureInfo.InvariantCulture, $"{o} {summary.Outcomes[(int)o]:N0}"));
        var seconds = Math.Max(summary.Elapsed.TotalSeconds, 1e-9);
        var t = summary.Timings;
        var reasons = summary.Ignored > 0 ? ": " + string.Join(", ", ignored) : string.Empty;
        return string.Create(
            CultureInfo.InvariantCulture,
            $"transactor: {summary.Status}: {summary.Lines:N0} lines, {summary.Rows:N0} rows ({summary.Applied:N0} applied, {summary.Ignored:N0} ignored{reasons}), {summary.MalformedRows:N0} malformed, {summary.Accounts:N0} accounts in {summary.Elapsed.TotalSeconds:F3} s ({summary.Lines / seconds:N0} lines/s). Time: reader {t.Reading.TotalSeconds:F3} s busy and {t.ReaderBlocked.TotalSeconds:F3} s waiting on full channels; partitions {t.Applying.TotalSeconds:F3} s applying and {t.Checking.TotalSeconds:F3} s checking (summed); output {t.Writing.TotalSeconds:F3} s; GC paused {GC.GetTotalPauseDuration().TotalSeconds:F3} s in {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)} gen0/1/2 collections");
    }

    /// <summary>The standard help, followed by the rules when the command is <c>process</c>.</summary>
    private sealed class HelpWithRules(HelpAction standard, Command process) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            var exitCode = standard.Invoke(parseResult);
            if (parseResult.CommandResult.Command == process)
            {
                parseResult.InvocationConfiguration.Output.WriteLine(ProcessRules);
            }

            return exitCode;
        }
    }
}
