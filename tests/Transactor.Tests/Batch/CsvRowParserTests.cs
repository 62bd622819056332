using System.Text;
using Transactor.Cli;

namespace Transactor.Tests.Batch;

public sealed class CsvRowParserTests
{
    [Theory]
    [InlineData("deposit,1,2,3", RowKind.Deposit, 1, 2, 30_000)]
    [InlineData("  deposit ,\t1 ,  2 , 1.5  ", RowKind.Deposit, 1, 2, 15_000)]
    [InlineData("withdrawal, 65535, 4294967295, 2.7500\r", RowKind.Withdrawal, 65_535, 4_294_967_295, 27_500)]
    [InlineData("DEPOSIT,0,0,0.0001", RowKind.Deposit, 0, 0, 1)]
    [InlineData("deposit,007,010,.5", RowKind.Deposit, 7, 10, 5_000)]
    [InlineData("deposit,1,2,5.", RowKind.Deposit, 1, 2, 50_000)]
    [InlineData("deposit,1,2,+1.25", RowKind.Deposit, 1, 2, 12_500)]
    [InlineData("deposit,1,2,-1.25", RowKind.Deposit, 1, 2, -12_500)]
    [InlineData("withdrawal,1,2,0", RowKind.Withdrawal, 1, 2, 0)]
    [InlineData("deposit,1,2,922337203685477.5807", RowKind.Deposit, 1, 2, long.MaxValue)]
    [InlineData("dispute,1,2,", RowKind.Dispute, 1, 2, 0)]
    [InlineData("dispute, 1, 2", RowKind.Dispute, 1, 2, 0)]
    [InlineData("resolve,1,2, ", RowKind.Resolve, 1, 2, 0)]
    [InlineData("chargeback,1,2,12.5", RowKind.Chargeback, 1, 2, 0)]
    public void Well_formed_rows_parse(string line, RowKind kind, int client, long tx, long amountMinor)
    {
        var error = CsvRowParser.Parse(Encoding.UTF8.GetBytes(line), out var row);

        Assert.Equal(RowError.None, error);
        Assert.Equal(new BatchRow(kind, (ushort)client, (uint)tx, amountMinor), row);
    }

    [Theory]
    [InlineData("", RowError.Blank)]
    [InlineData(" \t\r", RowError.Blank)]
    [InlineData("transfer,1,2,3", RowError.UnknownType)]
    [InlineData("deposits,1,2,3", RowError.UnknownType)]
    [InlineData("deposit", RowError.MissingField)]
    [InlineData("deposit,1", RowError.MissingField)]
    [InlineData("deposit,,2,3", RowError.MissingField)]
    [InlineData("deposit,1,,3", RowError.MissingField)]
    [InlineData("deposit,1,2", RowError.MissingAmount)]
    [InlineData("deposit,1,2,", RowError.MissingAmount)]
    [InlineData("deposit,1,2,3,4", RowError.TooManyFields)]
    [InlineData("dispute,1,2,,", RowError.TooManyFields)]
    [InlineData("deposit,x,2,3", RowError.BadClient)]
    [InlineData("deposit,-1,2,3", RowError.BadClient)]
    [InlineData("deposit,1 2,2,3", RowError.BadClient)]
    [InlineData("deposit,65536,2,3", RowError.ClientOutOfRange)]
    [InlineData("deposit,99999999999999999999999,2,3", RowError.ClientOutOfRange)]
    [InlineData("deposit,1,2.0,3", RowError.BadTx)]
    [InlineData("deposit,1,4294967296,3", RowError.TxOutOfRange)]
    [InlineData("deposit,1,2,abc", RowError.BadAmount)]
    [InlineData("deposit,1,2,1.2.3", RowError.BadAmount)]
    [InlineData("deposit,1,2,.", RowError.BadAmount)]
    [InlineData("deposit,1,2,-", RowError.BadAmount)]
    [InlineData("deposit,1,2,1e5", RowError.BadAmount)]
    [InlineData("deposit,1,2,1,5", RowError.TooManyFields)]
    [InlineData("deposit,1,2,1.23456", RowError.TooManyDecimals)]
    [InlineData("deposit,1,2,1.00000", RowError.TooManyDecimals)]
    [InlineData("dispute,1,2,x", RowError.BadAmount)]
    [InlineData("deposit,1,2,922337203685477.5808", RowError.AmountOutOfRange)]
    [InlineData("deposit,1,2,99999999999999999999999", RowError.AmountOutOfRange)]
    public void Malformed_rows_say_why(string line, RowError expected) =>
        Assert.Equal(expected, CsvRowParser.Parse(Encoding.UTF8.GetBytes(line), out _));

    [Theory]
    [InlineData("type,client,tx,amount", true)]
    [InlineData("type, client, tx, amount", true)]
    [InlineData(" Type ,CLIENT,tx ,amount\r", true)]
    [InlineData("type,client,tx", false)]
    [InlineData("type,client,tx,amount,extra", false)]
    [InlineData("client,type,tx,amount", false)]
    [InlineData("deposit,1,1,1.0", false)]
    public void The_header_is_recognised(string line, bool expected) =>
        Assert.Equal(expected, CsvRowParser.IsHeader(Encoding.UTF8.GetBytes(line)));

    [Fact]
    public void Every_error_has_a_description() =>
        Assert.All(
            Enum.GetValues<RowError>().Where(e => e is not (RowError.None or RowError.Blank)),
            e => Assert.NotEqual(e.ToString(), e.Describe()));
}
