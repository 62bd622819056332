using System.Text.Json;

namespace Transactor.Chaos;

/// <summary>A broken promise of the ledger, with the part of the history that shows it.</summary>
public sealed record Violation(string Kind, string Detail, IReadOnlyList<MovementExcerpt> Excerpt);

/// <summary>One key's history as it appears in a report.</summary>
public sealed record MovementExcerpt(string Key, MovementKind Kind, string? From, string? To, long AmountMinor, IReadOnlyList<Attempt> Attempts, Resolved? Resolved, JsonElement? Record)
{
    public static MovementExcerpt Of(Movement m, Resolution? resolution) =>
        new(m.Key, m.Kind, m.From, m.To, m.AmountMinor, m.Attempts, resolution?.Status, resolution?.Record);
}

/// <summary>What the checker found: violations fail the run; notes are observations that break no promise.</summary>
public sealed record Verdict(IReadOnlyList<Violation> Violations, IReadOnlyList<string> Notes);

/// <summary>
/// Checks a run's history against what the ledger promises (docs/reliability.md says why each check
/// is sound). <paramref name="final"/> is the read taken after the whole cluster was restarted and
/// every movement had ended; <paramref name="resolutions"/> holds, for every key, what
/// GET /transfers/{id} said at that point.
/// </summary>
public sealed class Checker(History history, IReadOnlyList<string> accountIds, BalanceRead final, IReadOnlyDictionary<string, Resolution> resolutions)
{
    /// <summary>Past this many violations of one kind, only their count is reported.</summary>
    public const int MaxViolationsPerKind = 20;

    /// <summary>The fields of a movement's answer that a retry and a later read must repeat exactly.</summary>
    private static readonly string[] AnswerFields = ["id", "kind", "status", "reason", "from", "to", "amount", "currency", "created_at"];

    private readonly List<Violation> _violations = [];
    private readonly List<string> _notes = [];
    private readonly Dictionary<string, int> _perKind = new(StringComparer.Ordinal);
    private readonly IReadOnlyCollection<Movement> _movements = history.Movements;

    public Verdict Check()
    {
        CheckResolved();
        CheckAnswersKept();
        CheckReadings();
        CheckFinalRead();
        CheckReadBounds();
        foreach (var (kind, count) in _perKind.Where(k => k.Value > MaxViolationsPerKind))
        {
            _notes.Add($"{count} violations of kind {kind}; the first {MaxViolationsPerKind} are listed.");
        }

        return new Verdict(_violations, _notes);
    }

    /// <summary>Every key has an end the ledger can name; none is still pending after everything settled.</summary>
    private void CheckResolved()
    {
        foreach (var movement in _movements)
        {
            switch (Resolution(movement).Status)
            {
                case Resolved.Pending:
                    Add("in_flight", $"{movement.Key} is still pending after the faults healed, recovery settled and the cluster restarted.", movement);
                    break;
                case Resolved.Unreadable:
                    Add("unresolved", $"GET /transfers/{movement.Key} gave no answer after the restart; the key cannot be checked.", movement);
                    break;
            }
        }
    }

    /// <summary>What a client was told stays true: a 201 is a commit recorded with the same answer; a rejection stays a rejection.</summary>
    private void CheckAnswersKept()
    {
        var balancesDiffer = 0;
        foreach (var movement in _movements)
        {
            var resolution = Resolution(movement);
            if (resolution.Status is Resolved.Unreadable)
            {
                continue;
            }

            foreach (var attempt in movement.Attempts)
            {
                if (attempt.Outcome == Outcome.Ok)
                {
                    if (resolution.Status != Resolved.Committed)
                    {
                        Add("acknowledged_lost", $"{movement.Key} was answered 201 at {attempt.CompletedAtMs} ms; after the restart the ledger says {resolution.Status}.", movement);
                    }
                    else if (DifferingField(attempt.Answer, resolution.Record) is { } field)
                    {
                        // A 201 without balances is what a decided but not yet applied record looks like.
                        var unapplied = attempt.Answer is { } answer && Raw(answer, "from_account") == "null" && Raw(answer, "to_account") == "null"
                            ? " The 201 carried no account balances: a decided record answered before the accounts applied it?"
                            : string.Empty;
                        Add("answer_changed", $"{movement.Key}: field '{field}' of the 201 answer differs from GET /transfers after the restart.{unapplied}", movement);
                    }
                    else if (!SameBalances(attempt.Answer, resolution.Record))
                    {
                        balancesDiffer++;
                    }
                }
                else if (attempt is { Outcome: Outcome.Fail, HttpStatus: 429 })
                {
                    // Refused before anything was recorded: only a later attempt may make the key happen.
                    if (attempt == movement.Attempts[^1] && resolution.Status == Resolved.Committed)
                    {
                        Add("refused_but_applied", $"{movement.Key}: its last attempt was refused with 429 (nothing recorded), yet the ledger committed it.", movement);
                    }
                }
                else if (attempt.Outcome == Outcome.Fail)
                {
                    var reason = resolution.Record is { } r && r.TryGetProperty("reason", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
                    if (resolution.Status != Resolved.Rejected || reason != attempt.Code)
                    {
                        Add("rejection_changed", $"{movement.Key} was rejected with {attempt.HttpStatus} {attempt.Code}; after the restart the ledger says {resolution.Status} {reason}.", movement);
                    }
                }
            }
        }

        if (balancesDiffer > 0)
        {
            _notes.Add($"{balancesDiffer} acknowledged movements: the account balances in the 201 answer differ from those GET /transfers shows (the row was written by a later driver after the first one's Complete was lost; the outcome is the same).");
        }
    }

    /// <summary>
    /// No balance is ever below its floor (available: minus the account's credit limit, 0 unless it
    /// allows an overdraft; the others: 0), and total = available + held, in every account answer of every read.
    /// </summary>
    private void CheckReadings()
    {
        foreach (var read in history.Reads)
        {
            foreach (var a in read.Accounts)
            {
                if (a.Available < -a.CreditLimit || a.Held < 0 || a.Reserved < 0 || a.Incoming < 0)
                {
                    Add("negative_balance", $"{a.AccountId} read at {read.StartedAtMs}-{read.EndedAtMs} ms ({read.Phase}): available {a.Available}, held {a.Held}, reserved {a.Reserved}, incoming {a.Incoming}.");
                }

                if (a.Total != a.Available + a.Held)
                {
                    Add("total_mismatch", $"{a.AccountId} read at {read.StartedAtMs} ms: total {a.Total} is not available {a.Available} + held {a.Held}.");
                }
            }
        }
    }

    /// <summary>
    /// On the quiesced read after the restart: nothing in flight, money conserved exactly, and every
    /// account holds exactly what replaying the committed movements gives (no key applied twice or half).
    /// </summary>
    private void CheckFinalRead()
    {
        if (!final.Complete || final.Accounts.Count != accountIds.Count)
        {
            Add("final_read_failed", $"The final read answered for {final.Accounts.Count} of {accountIds.Count} accounts.");
            return;
        }

        foreach (var a in final.Accounts.Where(a => a.Reserved != 0 || a.Incoming != 0))
        {
            Add("in_flight", $"{a.AccountId} still has reserved {a.Reserved} and incoming {a.Incoming} after everything settled.", Touching(a.AccountId).Where(m => Resolution(m).Status is Resolved.Pending).ToArray());
        }

        var committed = _movements.Where(m => Resolution(m).Status == Resolved.Committed).ToArray();
        var expectedNet = committed.Sum(m => m.Kind switch { MovementKind.Deposit => m.AmountMinor, MovementKind.Withdrawal => -m.AmountMinor, _ => 0 });
        var actualSum = final.Accounts.Sum(a => a.Available + a.Held + a.Reserved);
        if (actualSum != expectedNet)
        {
            Add("conservation", $"After the restart the accounts hold {actualSum} in all (available + held + reserved); committed deposits minus withdrawals are {expectedNet} (difference {actualSum - expectedNet}).");
        }

        var expected = accountIds.ToDictionary(id => id, _ => 0L, StringComparer.Ordinal);
        foreach (var m in committed)
        {
            if (m.From is { } from)
            {
                expected[from] -= m.AmountMinor;
            }

            if (m.To is { } to)
            {
                expected[to] += m.AmountMinor;
            }
        }

        foreach (var a in final.Accounts)
        {
            var actual = a.Available + a.Held + a.Reserved;
            if (actual != expected[a.AccountId])
            {
                var difference = actual - expected[a.AccountId];
                // The keys whose amount explains the difference are the first suspects of a double or lost apply.
                var suspects = Touching(a.AccountId).Where(m => m.AmountMinor == Math.Abs(difference)).ToArray();
                Add("balance_mismatch", $"{a.AccountId} holds {actual}; replaying its committed movements gives {expected[a.AccountId]} (difference {difference}; {suspects.Length} of its keys move exactly that much).", suspects);
            }
        }
    }

    /// <summary>
    /// Each complete read against bounds that hold however its GETs interleave with movements (the
    /// read is not a snapshot): a committed movement answered 201 before the read began counts in
    /// full; one invoked before the read ended but not yet answered may count anywhere between none
    /// and all of each account's side; any other contributes nothing.
    /// </summary>
    private void CheckReadBounds()
    {
        var committed = _movements.Where(m => Resolution(m).Status == Resolved.Committed)
            .Select(m => (m.Kind, m.AmountMinor, Invoked: m.FirstInvokedAtMs, Acknowledged: m.AcknowledgedAtMs ?? long.MaxValue))
            .ToArray();
        foreach (var read in history.Reads.Where(r => r.Complete && r.Accounts.Count == accountIds.Count))
        {
            long certain = 0, up = 0, down = 0;
            foreach (var (kind, amount, invoked, acknowledged) in committed)
            {
                if (invoked > read.EndedAtMs)
                {
                    continue;
                }

                if (acknowledged < read.StartedAtMs)
                {
                    certain += kind switch { MovementKind.Deposit => amount, MovementKind.Withdrawal => -amount, _ => 0 };
                    continue;
                }

                up += kind == MovementKind.Withdrawal ? 0 : amount;
                down += kind == MovementKind.Deposit ? 0 : amount;
            }

            var sum = read.Accounts.Sum(a => a.Available + a.Held + a.Reserved);
            if (sum < certain - down || sum > certain + up)
            {
                Add("read_out_of_bounds", $"The {read.Phase} read at {read.StartedAtMs}-{read.EndedAtMs} ms sums to {sum}; the history allows {certain - down}..{certain + up}.");
            }
        }
    }

    private Resolution Resolution(Movement movement) =>
        resolutions.TryGetValue(movement.Key, out var resolution) ? resolution : new Resolution(Resolved.Unreadable, null);

    private IEnumerable<Movement> Touching(string accountId) =>
        _movements.Where(m => m.From == accountId || m.To == accountId);

    private void Add(string kind, string detail, params Movement[] movements)
    {
        var count = _perKind[kind] = _perKind.GetValueOrDefault(kind) + 1;
        if (count <= MaxViolationsPerKind)
        {
            _violations.Add(new Violation(kind, detail, [.. movements.Take(10).Select(Excerpt)]));
        }
    }

    private MovementExcerpt Excerpt(Movement m) => MovementExcerpt.Of(m, Resolution(m));

    private static string? DifferingField(JsonElement? answer, JsonElement? record)
    {
        if (answer is not { ValueKind: JsonValueKind.Object } a || record is not { ValueKind: JsonValueKind.Object } r)
        {
            return "(body)";
        }

        foreach (var field in AnswerFields)
        {
            var left = a.TryGetProperty(field, out var x) ? x.GetRawText() : null;
            var right = r.TryGetProperty(field, out var y) ? y.GetRawText() : null;
            if (left != right)
            {
                return field;
            }
        }

        return null;
    }

    private static bool SameBalances(JsonElement? answer, JsonElement? record) =>
        answer is { } a && record is { } r
        && Raw(a, "from_account") == Raw(r, "from_account") && Raw(a, "to_account") == Raw(r, "to_account");

    private static string? Raw(JsonElement e, string field) => e.TryGetProperty(field, out var v) ? v.GetRawText() : null;
}
