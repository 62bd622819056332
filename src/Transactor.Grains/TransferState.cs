namespace Transactor.Grains;

/// <summary>
/// A movement's own row (<see cref="LedgerGrains.TransferRowId"/>, state name <see cref="StateName"/>):
/// written by its recovery shard once the movement has ended, with the outcome and the balances that
/// retries of the key get back. Earlier versions kept the record of a movement in flight here as
/// well; a shard takes such a record over when it meets one.
/// </summary>
[GenerateSerializer, Alias("Transactor.TransferState")]
public sealed class TransferState
{
    /// <summary>The state name of the row: the one earlier versions' record grains used.</summary>
    public const string StateName = "transfer";

    [Id(0)] public TransferRecord? Record { get; set; }

    /// <summary>True once every account has applied the decision.</summary>
    [Id(1)] public bool Completed { get; set; }

    /// <summary>The debited account right after the movement applied, kept so a retry gets the original answer.</summary>
    [Id(2)] public AccountSnapshot? Debit { get; set; }

    /// <summary>The credited account right after the movement applied.</summary>
    [Id(3)] public AccountSnapshot? Credit { get; set; }

    /// <summary>For a linked transfer: every account it names, in ascending id order, right after it applied.</summary>
    [Id(4)] public IReadOnlyList<AccountSnapshot>? Accounts { get; set; }
}
