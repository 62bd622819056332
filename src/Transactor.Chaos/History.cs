using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

namespace Transactor.Chaos;

/// <summary>The kinds of movement the clients send.</summary>
public enum MovementKind
{
    Deposit,
    Withdrawal,
    Transfer,
}

/// <summary>What one attempt of a request came to, as the client saw it.</summary>
public enum Outcome
{
    /// <summary>201: committed, and applied to every account before the answer (docs/transfers.md).</summary>
    Ok,

    /// <summary>A definite refusal: a 4xx problem (a rejected movement, or 429 with nothing recorded).</summary>
    Fail,

    /// <summary>Timeout, connection error, 5xx, or 202 pending: the movement may or may not happen.</summary>
    Unknown,
}

/// <summary>One request under one idempotency key, with the answer; times are milliseconds since the run began.</summary>
public sealed record Attempt(long InvokedAtMs, long CompletedAtMs, Outcome Outcome, int? HttpStatus, string? Code, JsonElement? Answer, string? Error);

/// <summary>
/// One idempotency key: what the client asked for and every attempt it made with it. A retry after an
/// unknown outcome or a 429 reuses the key, as a careful client would.
/// </summary>
public sealed class Movement(string key, MovementKind kind, string? from, string? to, long amountMinor)
{
    private readonly List<Attempt> _attempts = [];

    public string Key { get; } = key;

    public MovementKind Kind { get; } = kind;

    /// <summary>The debited account (null for a deposit).</summary>
    public string? From { get; } = from;

    /// <summary>The credited account (null for a withdrawal).</summary>
    public string? To { get; } = to;

    public long AmountMinor { get; } = amountMinor;

    public IReadOnlyList<Attempt> Attempts
    {
        get
        {
            lock (_attempts)
            {
                return [.. _attempts];
            }
        }
    }

    public void Add(Attempt attempt)
    {
        lock (_attempts)
        {
            _attempts.Add(attempt);
        }
    }

    public long FirstInvokedAtMs => Attempts[0].InvokedAtMs;

    /// <summary>When the first 201 for this key arrived, if one did.</summary>
    public long? AcknowledgedAtMs => Attempts.Where(a => a.Outcome == Outcome.Ok).Select(a => (long?)a.CompletedAtMs).FirstOrDefault();

    /// <summary>The last attempt's outcome: what the client was left believing.</summary>
    public Outcome LastOutcome => Attempts[^1].Outcome;
}

/// <summary>One account's balances as one GET /accounts/{id} returned them.</summary>
/// <param name="CreditLimit">How far below zero the account's available may go (0 unless it allows an overdraft).</param>
public sealed record AccountReading(string AccountId, long Available, long Held, long Total, long Reserved, long Incoming, long CreditLimit = 0);

/// <summary>
/// A read of every account, one GET each, sent concurrently between <see cref="StartedAtMs"/> and
/// <see cref="EndedAtMs"/>: not a snapshot, since movements apply while it runs.
/// </summary>
public sealed record BalanceRead(string Phase, long StartedAtMs, long EndedAtMs, IReadOnlyList<AccountReading> Accounts, int Failed)
{
    public bool Complete => Failed == 0;
}

/// <summary>Something the nemesis or the supervisor did, or saw.</summary>
public sealed record ClusterEvent(long AtMs, string Kind, string Target, string Detail);

/// <summary>Everything one run records; safe to add to from many tasks.</summary>
public sealed class History
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentDictionary<string, Movement> _movements = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<BalanceRead> _reads = new();
    private readonly ConcurrentQueue<ClusterEvent> _events = new();

    /// <summary>Milliseconds since the run began, on one monotonic clock for every record.</summary>
    public long NowMs => _clock.ElapsedMilliseconds;

    public IReadOnlyCollection<Movement> Movements => [.. _movements.Values];

    public IReadOnlyList<BalanceRead> Reads => [.. _reads];

    public IReadOnlyList<ClusterEvent> Events => [.. _events];

    public void Add(Movement movement)
    {
        if (!_movements.TryAdd(movement.Key, movement))
        {
            throw new InvalidOperationException($"Key '{movement.Key}' is used twice.");
        }
    }

    public void Add(BalanceRead read) => _reads.Enqueue(read);

    public ClusterEvent Event(string kind, string target, string detail)
    {
        var happened = new ClusterEvent(NowMs, kind, target, detail);
        _events.Enqueue(happened);
        Console.Error.WriteLine($"[{happened.AtMs / 1000.0,8:F1}s] {kind} {target}: {detail}");
        return happened;
    }
}
