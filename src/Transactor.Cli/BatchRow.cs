namespace Transactor.Cli;

/// <summary>What a well-formed row asks for.</summary>
public enum RowKind : byte
{
    Deposit = 0,
    Withdrawal = 1,
    Dispute = 2,
    Resolve = 3,
    Chargeback = 4,

    /// <summary>A deposit or withdrawal whose transaction id an earlier row claimed: ignored, but its client still appears.</summary>
    ReusedTx = 5,
}

/// <summary>
/// One parsed row, 16 bytes (1 + 1 padding + 2 + 4 + 8): batches of these are what the reader hands
/// to the partitions. The amount is in minor units of 0.0001; zero for dispute, resolve and chargeback.
/// </summary>
public readonly record struct BatchRow(RowKind Kind, ushort Client, uint Tx, long AmountMinor);

/// <summary>Why a line is not a well-formed row. <see cref="None"/> and <see cref="Blank"/> are not errors.</summary>
public enum RowError : byte
{
    None = 0,
    Blank,
    UnknownType,
    MissingField,
    TooManyFields,
    BadClient,
    ClientOutOfRange,
    BadTx,
    TxOutOfRange,
    MissingAmount,
    BadAmount,
    TooManyDecimals,
    AmountOutOfRange,
    LineTooLong,
}

/// <summary>Texts for <see cref="RowError"/>.</summary>
public static class RowErrors
{
    /// <summary>A short description of <paramref name="error"/> for the report on standard error.</summary>
    public static string Describe(this RowError error) => error switch
    {
        RowError.UnknownType => "unknown type (expected deposit, withdrawal, dispute, resolve or chargeback)",
        RowError.MissingField => "missing field (expected type, client, tx[, amount])",
        RowError.TooManyFields => "too many fields (expected type, client, tx, amount)",
        RowError.BadClient => "bad number in client",
        RowError.ClientOutOfRange => "client out of u16 range (0-65535)",
        RowError.BadTx => "bad number in tx",
        RowError.TxOutOfRange => "tx out of u32 range (0-4294967295)",
        RowError.MissingAmount => "missing amount (a deposit or withdrawal needs one)",
        RowError.BadAmount => "bad number in amount",
        RowError.TooManyDecimals => $"more than {CsvRowParser.AmountDecimals} decimal places in amount",
        RowError.AmountOutOfRange => "amount out of range",
        RowError.LineTooLong => $"line longer than {CsvRowParser.MaxLineBytes} bytes",
        _ => error.ToString(),
    };
}
