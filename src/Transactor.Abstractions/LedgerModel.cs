using System.Runtime.CompilerServices;
using Transactor;
using Transactor.Domain;

// Rows that earlier versions stored as JSON name their types with the assembly they lived in then,
// Transactor.Abstractions ("$type": "Transactor.Domain.AccountState, Transactor.Abstractions"):
// forwarding keeps those names resolving, so such rows still load.
[assembly: TypeForwardedTo(typeof(AccountState))]
[assembly: TypeForwardedTo(typeof(PendingEntry))]
[assembly: TypeForwardedTo(typeof(DepositHistory))]
[assembly: TypeForwardedTo(typeof(DepositRecord))]
[assembly: TypeForwardedTo(typeof(DepositStatus))]
[assembly: TypeForwardedTo(typeof(BatchOutcome))]
[assembly: TypeForwardedTo(typeof(EntrySide))]
[assembly: TypeForwardedTo(typeof(AccountSnapshot))]
[assembly: TypeForwardedTo(typeof(RejectionReason))]
[assembly: TypeForwardedTo(typeof(LedgerInvariantException))]
