using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Transactor.Chaos;

/// <summary>Where a movement ended, as the ledger says once everything has settled (GET /transfers/{id}).</summary>
public enum Resolved
{
    Committed,
    Rejected,

    /// <summary>Recorded, still without an end: a violation once the ledger has settled.</summary>
    Pending,

    /// <summary>The ledger knows nothing under the key: the movement never happened.</summary>
    NotFound,

    /// <summary>No answer could be had.</summary>
    Unreadable,
}

public sealed record Resolution(Resolved Status, JsonElement? Record);

/// <summary>
/// The clients: open and fund the accounts, then send transfers, deposits and withdrawals over
/// HTTP, each under its own idempotency key, recording every attempt and its answer in the
/// <see cref="History"/>; and read every balance now and then.
/// </summary>
internal sealed class Workload : IDisposable
{
    public const string Currency = "USD";

    private const long MaxTransferMinor = 5_000;
    private const long MaxDepositMinor = 5_000;
    private const long MaxWithdrawalMinor = 10_000;
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan SetupTimeout = TimeSpan.FromMinutes(2);

    private readonly ChaosRunOptions _options;
    private readonly History _history;
    private readonly HttpClient _http;

    public Workload(ChaosRunOptions options, History history, Uri api, string apiKey)
    {
        _options = options;
        _history = history;
        // A new connection after every fault: a pooled one may lead to an API process that was killed.
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(2),
            PooledConnectionLifetime = TimeSpan.FromSeconds(30),
            MaxConnectionsPerServer = options.Clients + options.Accounts + 8,
        };
        _http = new HttpClient(handler) { BaseAddress = api, Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", apiKey);
        AccountIds = [.. Enumerable.Range(0, options.Accounts).Select(i => $"s{options.Seed}-acct-{i:D2}")];
    }

    public IReadOnlyList<string> AccountIds { get; }

    /// <summary>Opens every account and funds it with a deposit (recorded like any other movement).</summary>
    public async Task SetupAsync(CancellationToken cancellation)
    {
        var deadline = DateTime.UtcNow + SetupTimeout;
        foreach (var id in AccountIds)
        {
            while (true)
            {
                var status = await TryOpen(id, cancellation);
                if (status is HttpStatusCode.Created or HttpStatusCode.OK)
                {
                    break;
                }

                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"Could not open account {id}: last answer {status}.");
                }

                await Task.Delay(500, cancellation);
            }
        }

        await Task.WhenAll(AccountIds.Select(async (id, i) =>
        {
            var funding = new Movement($"s{_options.Seed}-fund-{i:D2}", MovementKind.Deposit, null, id, _options.InitialBalanceMinor);
            _history.Add(funding);
            while (await Drive(funding, cancellation) != Outcome.Ok)
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"Could not fund account {id}.");
                }
            }
        }));
    }

    /// <summary>Runs <see cref="ChaosRunOptions.Clients"/> clients until <paramref name="stop"/>; a request under way then still gets its answer.</summary>
    public Task RunClientsAsync(CancellationToken stop)
    {
        var seeds = new Random(_options.Seed);
        var clients = Enumerable.Range(0, _options.Clients).Select(c => (Client: c, Seed: seeds.Next())).ToArray();
        return Task.WhenAll(clients.Select(c => Task.Run(() => RunClient(c.Client, new Random(c.Seed), stop), CancellationToken.None)));
    }

    /// <summary>Reads every balance each <see cref="ChaosRunOptions.ReadInterval"/> until <paramref name="stop"/>.</summary>
    public async Task RunReaderAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            await ReadAllAsync("load", CancellationToken.None);
            await Task.Delay(_options.ReadInterval, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>One GET per account, all at once; recorded in the history.</summary>
    public async Task<BalanceRead> ReadAllAsync(string phase, CancellationToken cancellation)
    {
        var started = _history.NowMs;
        var readings = await Task.WhenAll(AccountIds.Select(id => ReadAccount(id, cancellation)));
        var read = new BalanceRead(phase, started, _history.NowMs, [.. readings.OfType<AccountReading>()], readings.Count(r => r is null));
        _history.Add(read);
        return read;
    }

    /// <summary>What the ledger says happened under <paramref name="key"/>; retried a few times on errors.</summary>
    public async Task<Resolution> ResolveAsync(string key, CancellationToken cancellation)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                timeout.CancelAfter(_options.RequestTimeout);
                using var response = await _http.GetAsync($"transfers/{Uri.EscapeDataString(key)}", timeout.Token);
                var text = await response.Content.ReadAsStringAsync(timeout.Token);
                var json = Parse(text);
                if (response.StatusCode == HttpStatusCode.OK && json is { } record)
                {
                    var status = record.GetProperty("status").GetString();
                    return new Resolution(status switch
                    {
                        "committed" => Resolved.Committed,
                        "rejected" => Resolved.Rejected,
                        _ => Resolved.Pending,
                    }, record);
                }

                if (response.StatusCode == HttpStatusCode.NotFound && Code(json) == "transfer_not_found")
                {
                    return new Resolution(Resolved.NotFound, json);
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellation.IsCancellationRequested)
            {
                // Tried again below.
            }

            await Task.Delay(500 * (attempt + 1), cancellation);
        }

        return new Resolution(Resolved.Unreadable, null);
    }

    public void Dispose() => _http.Dispose();

    private async Task RunClient(int client, Random random, CancellationToken stop)
    {
        for (var n = 0; !stop.IsCancellationRequested; n++)
        {
            var key = $"s{_options.Seed}-c{client}-{n}";
            var roll = random.NextDouble();
            Movement movement;
            if (roll < 0.7)
            {
                var from = random.Next(AccountIds.Count);
                var to = (from + 1 + random.Next(AccountIds.Count - 1)) % AccountIds.Count;
                movement = new Movement(key, MovementKind.Transfer, AccountIds[from], AccountIds[to], random.NextInt64(1, MaxTransferMinor + 1));
            }
            else if (roll < 0.85)
            {
                movement = new Movement(key, MovementKind.Deposit, null, AccountIds[random.Next(AccountIds.Count)], random.NextInt64(1, MaxDepositMinor + 1));
            }
            else
            {
                movement = new Movement(key, MovementKind.Withdrawal, AccountIds[random.Next(AccountIds.Count)], null, random.NextInt64(1, MaxWithdrawalMinor + 1));
            }

            _history.Add(movement);
            for (var attempt = 1; ; attempt++)
            {
                var attempted = await Drive(movement, CancellationToken.None);
                var refusedUnrecorded = attempted == Outcome.Fail && movement.Attempts[^1].HttpStatus == (int)HttpStatusCode.TooManyRequests;
                if (attempted == Outcome.Ok || (attempted == Outcome.Fail && !refusedUnrecorded) || attempt == _options.MaxAttempts || stop.IsCancellationRequested)
                {
                    break;
                }

                // Same key again, as a client that does not know whether its request happened must.
                await Task.Delay(TimeSpan.FromMilliseconds(500 * attempt + random.Next(500)), stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>Sends <paramref name="movement"/> once and records the attempt.</summary>
    private async Task<Outcome> Drive(Movement movement, CancellationToken cancellation)
    {
        var (path, body) = movement.Kind switch
        {
            MovementKind.Transfer => ("transfers", $$"""{"from":"{{movement.From}}","to":"{{movement.To}}","amount":{{Str(movement.AmountMinor)}},"currency":"{{Currency}}"}"""),
            MovementKind.Deposit => ($"accounts/{movement.To}/deposits", $$"""{"amount":{{Str(movement.AmountMinor)}}}"""),
            _ => ($"accounts/{movement.From}/withdrawals", $$"""{"amount":{{Str(movement.AmountMinor)}}}"""),
        };
        var invoked = _history.NowMs;
        Attempt attempt;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            timeout.CancelAfter(_options.RequestTimeout);
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Add("Idempotency-Key", movement.Key);
            using var response = await _http.SendAsync(request, timeout.Token);
            var text = await response.Content.ReadAsStringAsync(timeout.Token);
            var json = Parse(text);
            var status = (int)response.StatusCode;
            var outcome = status switch
            {
                201 => Outcome.Ok,
                // 202 (pending) and 5xx: the movement may still happen.
                202 or >= 500 => Outcome.Unknown,
                >= 400 => Outcome.Fail,
                _ => Outcome.Unknown,
            };
            attempt = new Attempt(invoked, _history.NowMs, outcome, status, Code(json), json, json is null ? text : null);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException && !cancellation.IsCancellationRequested)
        {
            attempt = new Attempt(invoked, _history.NowMs, Outcome.Unknown, null, null, null, ex is TaskCanceledException ? "timeout" : ex.GetBaseException().Message);
        }

        movement.Add(attempt);
        return attempt.Outcome;
    }

    private async Task<HttpStatusCode?> TryOpen(string id, CancellationToken cancellation)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            timeout.CancelAfter(_options.RequestTimeout);
            using var content = new StringContent($$"""{"id":"{{id}}","currency":"{{Currency}}"}""", Encoding.UTF8, "application/json");
            using var response = await _http.PostAsync("accounts", content, timeout.Token);
            return response.StatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellation.IsCancellationRequested)
        {
            return null;
        }
    }

    private async Task<AccountReading?> ReadAccount(string id, CancellationToken cancellation)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            timeout.CancelAfter(ReadTimeout);
            using var response = await _http.GetAsync($"accounts/{id}", timeout.Token);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return null;
            }

            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(timeout.Token));
            var root = json.RootElement;
            return new AccountReading(id, root.GetProperty("available").GetInt64(), root.GetProperty("held").GetInt64(), root.GetProperty("total").GetInt64(),
                root.GetProperty("reserved").GetInt64(), root.GetProperty("incoming").GetInt64(),
                root.TryGetProperty("credit_limit", out var limit) ? limit.GetInt64() : 0);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException && !cancellation.IsCancellationRequested)
        {
            return null;
        }
    }

    private static JsonElement? Parse(string text)
    {
        try
        {
            using var json = JsonDocument.Parse(text);
            return json.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string? Code(JsonElement? json) =>
        json is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String ? code.GetString() : null;

    private static string Str(long value) => value.ToString(CultureInfo.InvariantCulture);
}
