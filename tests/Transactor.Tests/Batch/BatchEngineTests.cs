using System.Text;
using Transactor.Cli;
using Transactor.Domain;

namespace Transactor.Tests.Batch;

/// <summary>The engine end to end, from CSV text to CSV text.</summary>
public sealed class BatchEngineTests
{
    private const string Header = "type, client, tx, amount\n";
    private const string OutputHeader = "client,available,held,total,locked\n";

    [Fact]
    public async Task Deposits_and_withdrawals_apply_in_order_per_client()
    {
        var result = await Run(Header + """
            deposit, 1, 1, 1.0
            deposit, 2, 2, 2.0
            deposit, 1, 3, 2.0
            withdrawal, 1, 4, 1.5
            withdrawal, 2, 5, 3.0
            """);

        Assert.Equal(OutputHeader + "1,1.5000,0.0000,1.5000,false\n2,2.0000,0.0000,2.0000,false\n", result.Output);
        Assert.Equal(4, result.Summary.Applied);
        Assert.Equal(1, result.Summary.Outcomes[(int)BatchOutcome.InsufficientFunds]);
        Assert.Empty(result.Errors);
    }

    [Fact]
    public async Task Dispute_then_resolve_and_dispute_then_chargeback()
    {
        var result = await Run(Header + """
            deposit,1,1,10
            deposit,1,2,5
            dispute,1,1,
            deposit,2,3,7.25
            dispute,2,3
            resolve,2,3,
            dispute,1,2,
            chargeback,1,1,
            """);

        Assert.Equal(
            OutputHeader +
            "1,0.0000,5.0000,5.0000,true\n" +
            "2,7.2500,0.0000,7.2500,false\n",
            result.Output);
    }

    [Fact]
    public async Task Every_row_for_a_locked_account_is_ignored()
    {
        var result = await Run(Header + """
            deposit,1,1,10
            deposit,1,2,3
            dispute,1,2
            resolve,1,2
            dispute,1,1
            chargeback,1,1
            deposit,1,3,100
            withdrawal,1,4,1
            dispute,1,2
            resolve,1,2
            chargeback,1,2
            """);

        Assert.Equal(OutputHeader + "1,3.0000,0.0000,3.0000,true\n", result.Output);
        Assert.Equal(5, result.Summary.Outcomes[(int)BatchOutcome.AccountLocked]);
    }

    [Fact]
    public async Task References_to_missing_other_clients_or_wrongly_placed_deposits_are_ignored()
    {
        var result = await Run(Header + """
            deposit,1,1,10
            deposit,2,2,4
            dispute,1,99
            dispute,2,1
            resolve,1,1
            chargeback,1,1
            dispute,1,1
            dispute,1,1
            withdrawal,1,5,1
            dispute,1,5
            """);

        Assert.Equal(OutputHeader + "1,0.0000,10.0000,10.0000,false\n2,4.0000,0.0000,4.0000,false\n", result.Output);
        var outcomes = result.Summary.Outcomes;
        Assert.Equal(3, outcomes[(int)BatchOutcome.UnknownTx]);
        Assert.Equal(2, outcomes[(int)BatchOutcome.NotDisputed]);
        Assert.Equal(1, outcomes[(int)BatchOutcome.AlreadyDisputed]);
        Assert.Equal(1, outcomes[(int)BatchOutcome.InsufficientFunds]);
    }

    [Fact]
    public async Task A_reused_tx_id_is_ignored_across_clients_and_kinds_even_when_its_first_row_was_ignored()
    {
        var result = await Run(Header + """
            deposit,1,1,10
            deposit,2,1,5
            withdrawal,1,1,1
            withdrawal,3,7,1
            deposit,3,7,50
            deposit,1,8,0
            deposit,1,8,4
            dispute,2,1
            """);

        // Client 3's withdrawal failed but claimed id 7, so the deposit reusing it is ignored; client 2 still appears.
        Assert.Equal(
            OutputHeader +
            "1,10.0000,0.0000,10.0000,false\n" +
            "2,0.0000,0.0000,0.0000,false\n" +
            "3,0.0000,0.0000,0.0000,false\n",
            result.Output);
        Assert.Equal(4, result.Summary.Outcomes[(int)BatchOutcome.DuplicateTx]);
    }

    [Fact]
    public async Task Zero_and_negative_amounts_are_ignored()
    {
        var result = await Run(Header + """
            deposit,1,1,5
            deposit,1,2,0
            deposit,1,3,-1
            withdrawal,1,4,0.0000
            withdrawal,1,5,-2.5
            """);

        Assert.Equal(OutputHeader + "1,5.0000,0.0000,5.0000,false\n", result.Output);
        Assert.Equal(4, result.Summary.Outcomes[(int)BatchOutcome.InvalidAmount]);
    }

    [Fact]
    public async Task A_dispute_larger_than_available_is_ignored()
    {
        var result = await Run(Header + """
            deposit,1,1,10
            withdrawal,1,2,4
            dispute,1,1
            chargeback,1,1
            """);

        Assert.Equal(OutputHeader + "1,6.0000,0.0000,6.0000,false\n", result.Output);
        Assert.Equal(1, result.Summary.Outcomes[(int)BatchOutcome.ExceedsAvailable]);
    }

    [Fact]
    public async Task An_overflowing_deposit_is_ignored()
    {
        var result = await Run(Header + """
            deposit,1,1,922337203685477.5800
            deposit,1,2,0.0008
            deposit,1,3,0.0007
            """);

        Assert.Equal(OutputHeader + "1,922337203685477.5807,0.0000,922337203685477.5807,false\n", result.Output);
        Assert.Equal(1, result.Summary.Outcomes[(int)BatchOutcome.BalanceLimitExceeded]);
    }

    [Fact]
    public async Task Whitespace_case_and_decimal_forms_are_accepted_and_amounts_are_exact()
    {
        var result = await Run("\uFEFF  Type ,Client,TX , Amount \r\n" +
            "deposit,1,1,1\r\n" +
            "  deposit\t,  1 ,2 ,  1.5  \r\n" +
            "Deposit,1,3,2.7500\r\n" +
            "DEPOSIT,1,4,0.0001\r\n" +
            "deposit,1,5,.1\r\n" +
            "deposit,1,6,3.\r\n" +
            "withdrawal , 1 , 7 , 0.3333\r\n" +
            "\r\n" +
            "deposit,1,8,+0.2");

        Assert.Equal(OutputHeader + "1,8.2168,0.0000,8.2168,false\n", result.Output);
        Assert.Empty(result.Errors);
    }

    [Fact]
    public async Task Clients_appear_even_when_nothing_changed_their_balance_and_rows_are_sorted_by_client()
    {
        var result = await Run(Header + """
            dispute,65535,1
            withdrawal,300,2,5
            deposit,0,3,0
            deposit,7,4,1
            resolve,2,9
            """);

        Assert.Equal(
            OutputHeader +
            "0,0.0000,0.0000,0.0000,false\n" +
            "2,0.0000,0.0000,0.0000,false\n" +
            "7,1.0000,0.0000,1.0000,false\n" +
            "300,0.0000,0.0000,0.0000,false\n" +
            "65535,0.0000,0.0000,0.0000,false\n",
            result.Output);
        Assert.Equal(5, result.Summary.Accounts);
    }

    [Fact]
    public async Task Malformed_rows_are_reported_with_line_numbers_and_the_others_still_apply()
    {
        var result = await Run(Header + """
            deposit,1,1,10
            transfer,1,2,3
            deposit,70000,3,1
            deposit,1,4,1.23456

            deposit,1,5
            withdrawal,1,6,2
            deposit,1,4294967296,1
            deposit,x,8,1
            deposit,1,9,1.2.3
            """);

        Assert.Equal(OutputHeader + "1,8.0000,0.0000,8.0000,false\n", result.Output);
        Assert.Equal([3L, 4, 5, 7, 9, 10, 11], MalformedLines(result.Errors));
        Assert.Contains("line 4: client out of u16 range", result.Errors, StringComparison.Ordinal);
        Assert.Contains("line 5: more than 4 decimal places", result.Errors, StringComparison.Ordinal);
        Assert.Contains("line 3: unknown type", result.Errors, StringComparison.Ordinal);
        Assert.Contains("line 9: tx out of u32 range", result.Errors, StringComparison.Ordinal);
        Assert.Contains("deposit,1,4294967296,1", result.Errors, StringComparison.Ordinal);
        Assert.Equal(7, result.Summary.MalformedRows);
        Assert.Equal(BatchStatus.Completed, result.Summary.Status);
    }

    [Fact]
    public async Task Strict_stops_at_the_first_malformed_row_and_writes_nothing()
    {
        var result = await Run(Header + "deposit,1,1,10\ndeposit,1,2,1.00001\ndeposit,1,3,bad\n", new BatchOptions { Strict = true });

        Assert.Equal(BatchStatus.StoppedAtMalformedRow, result.Summary.Status);
        Assert.Equal(string.Empty, result.Output);
        Assert.Equal([3L], MalformedLines(result.Errors));
    }

    [Fact]
    public async Task A_wrong_header_stops_the_run()
    {
        var result = await Run("client,type,tx,amount\ndeposit,1,1,1\n");

        Assert.Equal(BatchStatus.BadHeader, result.Summary.Status);
        Assert.Equal(string.Empty, result.Output);
        Assert.Contains("line 1: expected the header", result.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Empty_input_gives_just_the_header()
    {
        Assert.Equal(OutputHeader, (await Run(string.Empty)).Output);
        Assert.Equal(OutputHeader, (await Run(Header)).Output);
    }

    [Fact]
    public async Task Overlong_lines_are_reported_and_skipped_even_across_read_buffers()
    {
        var shortOverlong = "deposit,1,2," + new string('1', CsvRowParser.MaxLineBytes);
        var hugeOverlong = "deposit,1,3," + new string('9', BatchEngine.ReadBufferBytes * 2);
        var csv = Header + $"deposit,1,1,1\n{shortOverlong}\ndeposit,1,4,2\n{hugeOverlong}\ndeposit,1,5,4\n{hugeOverlong}";

        var result = await Run(csv);

        Assert.Equal(OutputHeader + "1,7.0000,0.0000,7.0000,false\n", result.Output);
        Assert.Equal([3L, 5, 7], MalformedLines(result.Errors));
        Assert.True(result.Errors.Length < 2_000, "a malformed line is quoted in part, not whole");
    }

    [Fact]
    public async Task Tiny_reads_and_tiny_batches_give_the_same_result()
    {
        var csv = Generate(rows: 3_000, clients: 30, seed: 5);
        var expected = await Run(csv);

        for (var seed = 1; seed <= 3; seed++)
        {
            var options = new BatchOptions { Partitions = 3, BatchRows = 1 + seed, ChannelBatches = 1 };
            var actual = await Run(new TrickleStream(Encoding.UTF8.GetBytes(csv), new Random(seed)), options);

            Assert.Equal(expected.Output, actual.Output);
            Assert.Equal(expected.Errors, actual.Errors);
        }
    }

    [Fact]
    public async Task Several_partitions_give_the_same_result_as_one()
    {
        var csv = Generate(rows: 60_000, clients: 500, seed: 42);

        var one = await Run(csv, new BatchOptions { Partitions = 1 });
        var several = await Run(csv, new BatchOptions { Partitions = 4 });
        var odd = await Run(csv, new BatchOptions { Partitions = 7, BatchRows = 100 });

        Assert.Equal(one.Output, several.Output);
        Assert.Equal(one.Output, odd.Output);
        Assert.Equal(one.Errors, several.Errors);
        Assert.Equal(one.Summary.Outcomes, several.Summary.Outcomes);
        Assert.True(one.Summary.Accounts > 400, $"only {one.Summary.Accounts} accounts");
    }

    [Theory]
    [InlineData(1, 20_000, 40)]
    [InlineData(2, 20_000, 40)]
    [InlineData(3, 30_000, 5)]
    [InlineData(4, 10_000, 300)]
    [InlineData(5, 5_000, 1)]
    public async Task Generated_files_agree_with_the_sequential_model(int seed, int rows, int clients)
    {
        var csv = Generate(rows, clients, seed);

        var actual = await Run(csv, new BatchOptions { Partitions = 3, CheckInvariantsEveryRow = true });
        var (expected, malformed) = SequentialModel.Run(csv);

        Assert.True(expected == actual.Output, $"seed {seed}: engine and model differ\n{FirstDifference(expected, actual.Output)}");
        Assert.Equal(malformed, MalformedLines(actual.Errors));
    }

    [Fact]
    public async Task Generated_files_exercise_every_kind_of_outcome()
    {
        var totals = new long[Enum.GetValues<BatchOutcome>().Length];
        foreach (var (seed, clients) in new[] { (1, 40), (2, 5), (3, 300) })
        {
            var result = await Run(Generate(30_000, clients, seed));
            for (var i = 0; i < totals.Length; i++)
            {
                totals[i] += result.Summary.Outcomes[i];
            }

            Assert.True(result.Summary.MalformedRows > 0, $"seed {seed}: no malformed rows");
        }

        // Overflow needs amounts near 2^63, an account that is not open never happens in the engine, nor does an API key.
        var expected = Enum.GetValues<BatchOutcome>().Except([BatchOutcome.BalanceLimitExceeded, BatchOutcome.AccountNotFound, BatchOutcome.ChargedBack, BatchOutcome.NotOwner]);
        Assert.All(expected, o => Assert.True(totals[(int)o] > 0, $"no row ended {o}"));
    }

    [Fact]
    public async Task Hand_made_random_lines_agree_with_the_sequential_model()
    {
        // Odder than the generator: random spacing, case, decimal forms, and near-miss malformed fields.
        string[] types = ["deposit", "withdrawal", "dispute", "resolve", "chargeback", "Deposit", "DISPUTE", "refund", ""];
        string[] amounts = ["1", "1.5", "2.7500", ".25", "3.", "0", "-1", "+2", "0.0001", "1.00001", "1..2", "", "x", "99999999999999999999"];
        for (var seed = 1; seed <= 4; seed++)
        {
            var random = new Random(seed);
            var csv = new StringBuilder(Header);
            for (var i = 0; i < 8_000; i++)
            {
                string Pad(string field) => random.Next(6) switch { 0 => $" {field}", 1 => $"{field}\t ", 2 => $"  {field}  ", _ => field };
                var type = types[random.Next(types.Length)];
                var client = random.Next(40) == 0 ? "65536" : random.Next(6).ToString(System.Globalization.CultureInfo.InvariantCulture);
                var tx = random.Next(60) == 0 ? "-3" : random.Next(300).ToString(System.Globalization.CultureInfo.InvariantCulture);
                var amount = random.Next(3) == 0 ? random.Next(1, 500).ToString(System.Globalization.CultureInfo.InvariantCulture) : amounts[random.Next(amounts.Length)];
                csv.Append(Pad(type)).Append(',').Append(Pad(client)).Append(',').Append(Pad(tx));
                if (random.Next(5) != 0)
                {
                    csv.Append(',').Append(Pad(amount));
                }

                csv.Append(random.Next(10) == 0 ? "\r\n" : "\n");
            }

            var text = csv.ToString();
            var actual = await Run(text, new BatchOptions { Partitions = 2, CheckInvariantsEveryRow = true });
            var (expected, malformed) = SequentialModel.Run(text);

            Assert.True(expected == actual.Output, $"seed {seed}: engine and model differ\n{FirstDifference(expected, actual.Output)}");
            Assert.Equal(malformed, MalformedLines(actual.Errors));
        }
    }

    internal static string Generate(long rows, int clients, int seed)
    {
        using var output = new MemoryStream();
        CsvGenerator.Write(output, new GenerateOptions(rows, clients, seed));
        return Encoding.UTF8.GetString(output.ToArray());
    }

    internal static List<long> MalformedLines(string errors) =>
        errors.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l.StartsWith("line ", StringComparison.Ordinal))
            .Select(l => long.Parse(l.AsSpan(5, l.IndexOf(':', StringComparison.Ordinal) - 5), System.Globalization.CultureInfo.InvariantCulture))
            .ToList();

    private static Task<RunResult> Run(string csv, BatchOptions? options = null) =>
        Run(new MemoryStream(Encoding.UTF8.GetBytes(csv)), options);

    private static async Task<RunResult> Run(Stream input, BatchOptions? options = null)
    {
        using var output = new MemoryStream();
        using var errors = new StringWriter();
        var summary = await new BatchEngine(options ?? new BatchOptions { CheckInvariantsEveryRow = true }).RunAsync(input, output, errors);
        return new RunResult(Encoding.UTF8.GetString(output.ToArray()), errors.ToString(), summary);
    }

    private static string FirstDifference(string expected, string actual)
    {
        var e = expected.Split('\n');
        var a = actual.Split('\n');
        for (var i = 0; i < Math.Max(e.Length, a.Length); i++)
        {
            var left = i < e.Length ? e[i] : "<none>";
            var right = i < a.Length ? a[i] : "<none>";
            if (left != right)
            {
                return $"output line {i + 1}: model '{left}', engine '{right}'";
            }
        }

        return "no difference";
    }

    private sealed record RunResult(string Output, string Errors, BatchSummary Summary);

    /// <summary>Returns a random 1 to 7 bytes per read, so lines straddle every kind of read boundary.</summary>
    private sealed class TrickleStream(byte[] data, Random random) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => data.Length;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(Math.Min(count, random.Next(1, 8)), data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
