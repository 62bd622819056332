using System.Text.Json;
using Transactor.Chaos;

namespace Transactor.Tests.Chaos;

/// <summary>
/// The fault suite's checker on small hand-made histories: it passes a consistent one, and names
/// each broken promise when one is planted, so that a run that reports no violation means something.
/// </summary>
public sealed class CheckerTests
{
    private const string A = "acct-a";
    private const string B = "acct-b";

    [Fact]
    public void A_consistent_history_has_no_violation()
    {
        var (history, resolutions) = Funded();
        var transfer = Acknowledged(history, resolutions, "t1", MovementKind.Transfer, A, B, 300, at: 100);
        history.Add(Read(50, 60, (A, 1_000, 0), (B, 1_000, 0)));
        history.Add(Read(90, 130, (A, 700, 0), (B, 1_000, 0)));

        var verdict = Check(history, resolutions, Read(200, 210, (A, 700, 0), (B, 1_300, 0)));

        Assert.Empty(verdict.Violations);
        Assert.NotNull(transfer);
    }

    [Fact]
    public void A_movement_applied_twice_on_one_account_is_a_balance_mismatch_and_breaks_conservation()
    {
        var (history, resolutions) = Funded();
        Acknowledged(history, resolutions, "t1", MovementKind.Transfer, A, B, 300, at: 100);

        var verdict = Check(history, resolutions, Read(200, 210, (A, 400, 0), (B, 1_300, 0)));

        var mismatch = Assert.Single(verdict.Violations, v => v.Kind == "balance_mismatch");
        Assert.Contains(A, mismatch.Detail, StringComparison.Ordinal);
        Assert.Equal("t1", Assert.Single(mismatch.Excerpt).Key);
        Assert.Contains(verdict.Violations, v => v.Kind == "conservation");
    }

    [Fact]
    public void An_acknowledged_movement_the_ledger_no_longer_knows_is_lost()
    {
        var (history, resolutions) = Funded();
        Acknowledged(history, resolutions, "t1", MovementKind.Deposit, null, A, 50, at: 100);
        resolutions["t1"] = new Resolution(Resolved.NotFound, null);

        var verdict = Check(history, resolutions, Read(200, 210, (A, 1_000, 0), (B, 1_000, 0)));

        Assert.Contains(verdict.Violations, v => v.Kind == "acknowledged_lost" && v.Excerpt.Single().Key == "t1");
    }

    [Fact]
    public void A_negative_available_balance_in_any_read_is_a_violation()
    {
        var (history, resolutions) = Funded();
        history.Add(Read(50, 60, (A, -1, 0), (B, 1_000, 0)));

        var verdict = Check(history, resolutions, Read(200, 210, (A, 1_000, 0), (B, 1_000, 0)));

        Assert.Contains(verdict.Violations, v => v.Kind == "negative_balance");
    }

    [Fact]
    public void A_read_may_miss_or_double_count_a_movement_in_flight_but_not_one_that_was_answered_before_it()
    {
        var (history, resolutions) = Funded();
        Acknowledged(history, resolutions, "t1", MovementKind.Transfer, A, B, 300, at: 100);
        // Read while t1 was in flight: B already credited, A read before its debit: 2,300 is allowed.
        history.Add(Read(95, 99, (A, 1_000, 0), (B, 1_300, 0)));
        Assert.Empty(Check(history, resolutions, Read(200, 210, (A, 700, 0), (B, 1_300, 0))).Violations);

        // The same sums after t1 was answered: money was created.
        history.Add(Read(150, 160, (A, 1_000, 0), (B, 1_300, 0)));
        var verdict = Check(history, resolutions, Read(200, 210, (A, 700, 0), (B, 1_300, 0)));

        Assert.Single(verdict.Violations, v => v.Kind == "read_out_of_bounds");
    }

    [Fact]
    public void Money_still_reserved_or_a_key_still_pending_after_settling_is_in_flight()
    {
        var (history, resolutions) = Funded();
        var stuck = new Movement("t1", MovementKind.Withdrawal, A, null, 100);
        stuck.Add(new Attempt(100, 200, Outcome.Unknown, null, null, null, "timeout"));
        history.Add(stuck);
        resolutions["t1"] = new Resolution(Resolved.Pending, null);

        var verdict = Check(history, resolutions, Read(300, 310, (A, 900, 100), (B, 1_000, 0)));

        Assert.Equal(2, verdict.Violations.Count(v => v.Kind == "in_flight"));
    }

    [Fact]
    public void A_rejection_the_ledger_later_applies_is_a_violation()
    {
        var (history, resolutions) = Funded();
        var rejected = new Movement("t1", MovementKind.Withdrawal, A, null, 100);
        rejected.Add(new Attempt(100, 110, Outcome.Fail, 422, "insufficient_funds", null, null));
        history.Add(rejected);
        resolutions["t1"] = new Resolution(Resolved.Committed, Answer("t1", MovementKind.Withdrawal, A, null, 100));

        var verdict = Check(history, resolutions, Read(300, 310, (A, 900, 0), (B, 1_000, 0)));

        Assert.Contains(verdict.Violations, v => v.Kind == "rejection_changed");
    }

    private static (History History, Dictionary<string, Resolution> Resolutions) Funded()
    {
        var history = new History();
        var resolutions = new Dictionary<string, Resolution>(StringComparer.Ordinal);
        Acknowledged(history, resolutions, "fund-a", MovementKind.Deposit, null, A, 1_000, at: 10);
        Acknowledged(history, resolutions, "fund-b", MovementKind.Deposit, null, B, 1_000, at: 10);
        return (history, resolutions);
    }

    private static Movement Acknowledged(History history, Dictionary<string, Resolution> resolutions, string key, MovementKind kind, string? from, string? to, long amount, long at)
    {
        var movement = new Movement(key, kind, from, to, amount);
        var answer = Answer(key, kind, from, to, amount);
        movement.Add(new Attempt(at - 5, at, Outcome.Ok, 201, null, answer, null));
        history.Add(movement);
        resolutions[key] = new Resolution(Resolved.Committed, answer);
        return movement;
    }

    private static JsonElement Answer(string key, MovementKind kind, string? from, string? to, long amount) =>
        JsonSerializer.SerializeToElement(new Dictionary<string, object?>
        {
            ["id"] = key,
            ["kind"] = kind.ToString().ToLowerInvariant(),
            ["status"] = "committed",
            ["reason"] = null,
            ["from"] = from,
            ["to"] = to,
            ["amount"] = amount,
            ["currency"] = "USD",
            ["created_at"] = "2026-01-01T00:00:00+00:00",
        });

    private static BalanceRead Read(long started, long ended, params (string Id, long Available, long Reserved)[] accounts) =>
        new("test", started, ended, [.. accounts.Select(a => new AccountReading(a.Id, a.Available, 0, a.Available, a.Reserved, 0))], 0);

    private static Verdict Check(History history, Dictionary<string, Resolution> resolutions, BalanceRead final) =>
        new Checker(history, [A, B], final, resolutions).Check();
}
