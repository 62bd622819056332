using System.CommandLine;
using System.Text;
using Transactor.Cli;

namespace Transactor.Tests.Batch;

/// <summary>The <c>transactor</c> command line, with its standard streams in memory.</summary>
public sealed class TransactorCommandTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("transactor-batch-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Process_writes_accounts_to_standard_output_and_a_summary_to_standard_error()
    {
        var file = Write("type, client, tx, amount\ndeposit, 2, 1, 1.5\ndeposit, 1, 2, 2\nbogus,1,3,1\n");

        var run = await Invoke("process", file);

        Assert.Equal(ExitCodes.Success, run.ExitCode);
        Assert.Equal("client,available,held,total,locked\n1,2.0000,0.0000,2.0000,false\n2,1.5000,0.0000,1.5000,false\n", run.Output);
        Assert.Contains("line 4: unknown type", run.Errors, StringComparison.Ordinal);
        Assert.Contains("transactor: Completed: 4 lines, 2 rows (2 applied", run.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Strict_exits_non_zero_at_the_first_malformed_row_with_no_output()
    {
        var file = Write("type, client, tx, amount\ndeposit, 1, 1, 1\ndeposit, 1, 2, 1.00001\n");

        var run = await Invoke("process", file, "--strict", "--quiet");

        Assert.Equal(ExitCodes.BadInput, run.ExitCode);
        Assert.Equal(string.Empty, run.Output);
        Assert.Equal("line 3: more than 4 decimal places in amount: deposit, 1, 2, 1.00001\n", run.Errors);
    }

    [Fact]
    public async Task Without_strict_the_same_file_succeeds()
    {
        var file = Write("type, client, tx, amount\ndeposit, 1, 1, 1\ndeposit, 1, 2, 1.00001\n");

        var run = await Invoke("process", file, "--quiet");

        Assert.Equal(ExitCodes.Success, run.ExitCode);
        Assert.Equal("client,available,held,total,locked\n1,1.0000,0.0000,1.0000,false\n", run.Output);
    }

    [Fact]
    public async Task A_missing_file_exits_with_its_own_code()
    {
        var run = await Invoke("process", Path.Combine(_directory, "absent.csv"));

        Assert.Equal(ExitCodes.CannotOpen, run.ExitCode);
        Assert.Contains("cannot open", run.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dash_reads_standard_input()
    {
        var run = await Invoke(["process", "-", "--quiet"], stdin: "type,client,tx,amount\ndeposit,9,1,3\n");

        Assert.Equal(ExitCodes.Success, run.ExitCode);
        Assert.Equal("client,available,held,total,locked\n9,3.0000,0.0000,3.0000,false\n", run.Output);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65")]
    public async Task Partitions_out_of_range_are_refused(string partitions)
    {
        var run = await Invoke("process", Write("type,client,tx,amount\n"), "--partitions", partitions);

        Assert.NotEqual(ExitCodes.Success, run.ExitCode);
        Assert.Equal(string.Empty, run.Output);
        Assert.Contains("--partitions must be from 1 to 64", run.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Process_help_documents_the_rules_and_the_deviation_from_the_classic_engine()
    {
        var run = await Invoke("process", "--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("--strict", run.Help, StringComparison.Ordinal);
        Assert.Contains("--partitions", run.Help, StringComparison.Ordinal);
        Assert.Contains("no available balance ever goes negative", run.Help, StringComparison.Ordinal);
        Assert.Contains("larger than the client's current available balance is IGNORED", run.Help, StringComparison.Ordinal);
        Assert.Contains("chargeback", run.Help, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Root_help_lists_both_commands_in_one_line_each()
    {
        var run = await Invoke("--help");

        Assert.Contains("process <file>", run.Help, StringComparison.Ordinal);
        Assert.Contains("generate", run.Help, StringComparison.Ordinal);
        Assert.DoesNotContain("IGNORED", run.Help, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Generate_is_reproducible_by_seed_and_its_output_is_processable()
    {
        var first = await Invoke("generate", "--rows", "2000", "--clients", "25", "--seed", "9");
        var again = await Invoke("generate", "--rows", "2000", "--clients", "25", "--seed", "9");
        var other = await Invoke("generate", "--rows", "2000", "--clients", "25", "--seed", "10");

        Assert.Equal(ExitCodes.Success, first.ExitCode);
        Assert.Equal(first.Output, again.Output);
        Assert.NotEqual(first.Output, other.Output);
        var lines = first.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2001, lines.Length);
        Assert.Equal("type, client, tx, amount", lines[0]);

        var processed = await Invoke("process", Write(first.Output), "--quiet");
        Assert.Equal(ExitCodes.Success, processed.ExitCode);
        Assert.Equal(SequentialModel.Run(first.Output).Output, processed.Output);
    }

    [Theory]
    [InlineData("--clients", "0")]
    [InlineData("--clients", "65536")]
    [InlineData("--rows", "-1")]
    public async Task Generate_refuses_options_out_of_range(string option, string value)
    {
        string[] args = option == "--rows" ? ["generate", "--clients", "5", option, value] : ["generate", "--rows", "5", option, value];

        var run = await Invoke(args);

        Assert.NotEqual(ExitCodes.Success, run.ExitCode);
        Assert.Equal(string.Empty, run.Output);
        Assert.Contains($"{option} must", run.Errors, StringComparison.Ordinal);
    }

    private string Write(string content)
    {
        var path = Path.Combine(_directory, $"{Guid.NewGuid():N}.csv");
        File.WriteAllText(path, content);
        return path;
    }

    private static Task<CommandRun> Invoke(params string[] args) => Invoke(args, stdin: string.Empty);

    private static async Task<CommandRun> Invoke(string[] args, string stdin)
    {
        var output = new MemoryStream();
        var errors = new StringWriter { NewLine = "\n" };
        var helpOutput = new StringWriter();
        var streams = new StandardStreams(() => new MemoryStream(Encoding.UTF8.GetBytes(stdin)), () => output, errors, ErrorIsTerminal: false);
        var exitCode = await TransactorCommand.Create(streams).Parse(args).InvokeAsync(new InvocationConfiguration { Output = helpOutput, Error = errors });
        return new CommandRun(exitCode, Encoding.UTF8.GetString(output.ToArray()), helpOutput.ToString(), errors.ToString());
    }

    /// <param name="Output">What went to standard output through the streams: the results.</param>
    /// <param name="Help">What System.CommandLine wrote: help.</param>
    private sealed record CommandRun(int ExitCode, string Output, string Help, string Errors);
}
