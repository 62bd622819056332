namespace Transactor;

/// <summary>
/// The response timeout that grain interfaces set on some of their methods (<c>[ResponseTimeout]</c>),
/// over the caller's own: <c>Transactor:FailureDetection:ResponseTimeout</c> on the silos (30 s unless
/// configured) and <c>Transactor:FailureDetection:ClientResponseTimeout</c> in the API's client (5 s).
/// </summary>
public static class CallTimeouts
{
    /// <summary>
    /// 30 s, Orleans' default, for two kinds of call. Those that wait on purpose: a coordinator's
    /// <c>Execute</c> waits up to <c>TransferOptions.WaitTimeout</c> (10 s) for a concurrent driver,
    /// plus its own calls. And those the API makes that write to storage (opening an account, its
    /// limits, a dispute, creating or revoking a key, registering a run): a write that timed out may
    /// still take effect, and its caller would answer 503 for a change that stands (a key whose
    /// secret nobody heard), so they wait as long as storage may take. The reads a request makes
    /// before such a write (an owner check) keep the caller's bound, and answer 503 before anything
    /// is written.
    /// </summary>
    public const string Patient = "00:00:30";
}
