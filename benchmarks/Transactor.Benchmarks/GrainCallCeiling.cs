namespace Transactor.Benchmarks;

// The machine's ceiling for the same load: one trivial grain call per operation, from the same
// co-hosted client at the same concurrency over as many grains. A transfer makes
// TransferGrainCalls such calls (with more work in each), so Transactor's transfers/s times that
// count, against this row, says how much of what Orleans can do on this machine a transfer uses.

[Alias("Transactor.Benchmarks.IEchoGrain")]
public interface IEchoGrain : IGrainWithStringKey
{
    [Alias("Echo")]
    Task<long> Echo(long value);
}

public sealed class EchoGrain : Grain, IEchoGrain
{
    public Task<long> Echo(long value) => Task.FromResult(value);
}

internal static class GrainCallCeiling
{
    /// <summary>
    /// Grain calls in one transfer: the client's Execute, then the coordinator's Begin, two
    /// prepares, Decide, two commits and Complete (docs/transfers.md).
    /// </summary>
    public const int TransferGrainCalls = 8;
}
