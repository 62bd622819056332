namespace Transactor.Grains;

/// <summary>The points between a coordinator's steps where a test can inject a crash.</summary>
public enum TransferStep
{
    /// <summary>The movement is recorded; no account has been asked yet.</summary>
    AfterBegin,

    /// <summary>The first account (in id order) has prepared.</summary>
    AfterFirstPrepare,

    /// <summary>Every account has answered its prepare; the decision is not yet recorded.</summary>
    AfterPrepare,

    /// <summary>The decision is recorded; no account has applied it.</summary>
    AfterDecide,

    /// <summary>The first account has applied the decision.</summary>
    AfterFirstApply,
}

/// <summary>
/// A test hook called between the coordinator's steps. Production registers <see cref="NoTransferFaults"/>;
/// tests register one that throws <see cref="InjectedFaultException"/> to stop a coordinator dead, as a crash would.
/// </summary>
public interface ITransferFaults
{
    void OnStep(TransferStep step, string transferId);
}

/// <summary>Injects nothing.</summary>
public sealed class NoTransferFaults : ITransferFaults
{
    public void OnStep(TransferStep step, string transferId)
    {
    }
}

/// <summary>Thrown by a test's <see cref="ITransferFaults"/> to abandon a movement mid-way.</summary>
[GenerateSerializer, Alias("Transactor.InjectedFaultException")]
public sealed class InjectedFaultException : Exception
{
    public InjectedFaultException()
    {
    }

    public InjectedFaultException(string message)
        : base(message)
    {
    }

    public InjectedFaultException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
