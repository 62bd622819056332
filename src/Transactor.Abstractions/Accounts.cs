namespace Transactor;

/// <summary>The result of a dispute, resolve or chargeback on an account.</summary>
[GenerateSerializer, Immutable, Alias("Transactor.DisputeResult")]
public sealed record DisputeResult(
    [property: Id(0)] Domain.BatchOutcome Outcome,
    [property: Id(1)] AccountSnapshot? Account);
