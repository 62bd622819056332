using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Polly.CircuitBreaker;

namespace Transactor.LoadGen;

/// <summary>
/// Sets up accounts, drives transfers through the HTTP API from many clients, then checks the books.
/// Every retry of a transfer reuses its idempotency key, so no retry can move money twice.
/// Polite clients send through <see cref="PoliteHttp"/> (retries, circuit breaker, bulkhead) when
/// the runner is given the transport to build it on; without one they back off by hand.
/// </summary>
public sealed class LoadRunner(HttpClient http, LoadOptions options, HttpMessageHandler? politeTransport = null)
{
    /// <summary>How long bursts last, and how often they come, when <see cref="LoadOptions.Overload"/> is above 1.</summary>
    private static readonly TimeSpan BurstLength = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan BurstEvery = TimeSpan.FromSeconds(10);

    /// <summary>The shortest wait of a polite client that found the circuit breaker open.</summary>
    private static readonly TimeSpan MinCircuitWait = TimeSpan.FromMilliseconds(50);

    /// <summary>How often the books check asks again for one account or transfer whose answer is transient or pending, and how long it waits between.</summary>
    private const int MaxCheckAttempts = 40;
    private static readonly TimeSpan CheckRetryDelay = TimeSpan.FromMilliseconds(250);

    /// <summary>Tickets an open-loop generator may queue ahead of its clients; beyond it tickets are dropped and counted.</summary>
    private const int MaxQueuedTickets = 100_000;


    private readonly LoadStats _stats = new();
    private PoliteClient? _polite;
    private readonly ConcurrentQueue<string> _committed = new();
    private long _committedTracked;
    private string[] _accounts = [];
    private double[] _zipfCdf = [];

    public LoadStats Stats => _stats;

    /// <summary>Runs setup, load and checks. <paramref name="progress"/> is called about twice a second during the load.</summary>
    public async Task<Summary> RunAsync(Action<LoadStats, TimeSpan>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Accounts, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Clients, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxInFlight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BulkheadLimit, 1);
        _polite = politeTransport is null ? null : PoliteHttp.Create(politeTransport, http.BaseAddress, options, _stats);
        if (_polite is not null)
        {
            // The same credentials as the impolite clients (the API key).
            _polite.Http.DefaultRequestHeaders.Authorization = http.DefaultRequestHeaders.Authorization;
        }

        await SetupAccounts(cancellation);
        var stopwatch = Stopwatch.StartNew();
        using var progressStop = new CancellationTokenSource();
        var reporter = progress is null ? Task.CompletedTask : Report(progress, stopwatch, progressStop.Token);
        if (options.Rate is { } rate && options.OpenLoop)
        {
            await RunTrueOpenLoop(rate, stopwatch, cancellation);
        }
        else if (options.Rate is { } clientRate)
        {
            await RunOpenLoop(clientRate, stopwatch, cancellation);
        }
        else
        {
            await RunClosedLoop(stopwatch, cancellation);
        }

        var elapsed = stopwatch.Elapsed;
        await progressStop.CancelAsync();
        await reporter;
        var failures = await CheckBooks(cancellation);
        _polite?.Dispose();
        return _stats.Summarize(options, elapsed, failures);
    }

    private async Task Report(Action<LoadStats, TimeSpan> progress, Stopwatch stopwatch, CancellationToken stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                progress(_stats, stopwatch.Elapsed);
                await Task.Delay(500, stop);
            }
        }
        catch (OperationCanceledException)
        {
        }

        progress(_stats, stopwatch.Elapsed);
    }

    private async Task SetupAccounts(CancellationToken cancellation)
    {
        _accounts = Enumerable.Range(0, options.Accounts).Select(i => $"lg-{options.RunId}-{i:D6}").ToArray();
        if (options.Skew == Skew.Zipf)
        {
            var weights = Enumerable.Range(1, options.Accounts).Select(rank => 1.0 / Math.Pow(rank, options.ZipfExponent)).ToArray();
            var sum = weights.Sum();
            var running = 0.0;
            _zipfCdf = weights.Select(w => running += w / sum).ToArray();
        }

        await Parallel.ForEachAsync(_accounts, new ParallelOptions { MaxDegreeOfParallelism = Math.Min(options.Clients, 64), CancellationToken = cancellation }, async (id, ct) =>
        {
            await Setup(() => Json(HttpMethod.Post, "/accounts", $$"""{"id":"{{id}}","currency":"USD"}""", null), ct);
            await Setup(() => Json(HttpMethod.Post, $"/accounts/{id}/deposits", $$"""{"amount":{{Str(options.InitialBalanceMinor)}}}""", $"lg-{options.RunId}-fund-{id}"), ct);
        });
    }

    /// <summary>
    /// Sends one setup request, retrying transient failures (429, 5xx, connection errors) until
    /// <see cref="LoadOptions.SetupTimeout"/> has passed. A budget of time, not of attempts: how often a request
    /// is refused depends on how many others contend for the ledger's slots, which the generator does not know.
    /// </summary>
    private async Task Setup(Func<HttpRequestMessage> request, CancellationToken cancellation)
    {
        var started = Stopwatch.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            var expired = Stopwatch.GetElapsedTime(started) >= options.SetupTimeout;
            using var message = request();
            TimeSpan? retryAfter = null;
            try
            {
                using var response = await http.SendAsync(message, cancellation);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }

                if (!IsTransient(response.StatusCode) || expired)
                {
                    throw new InvalidOperationException($"Setup {message.Method} {message.RequestUri} failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellation)}");
                }

                retryAfter = response.Headers.RetryAfter?.Delta;
            }
            catch (HttpRequestException) when (!expired)
            {
            }

            await Task.Delay(Wait(attempt, Random.Shared, retryAfter, capRetryAfter: true), cancellation);
        }
    }

    private async Task RunClosedLoop(Stopwatch stopwatch, CancellationToken cancellation)
    {
        long issued = 0;
        var burstClients = (int)Math.Round(options.Clients * Math.Max(0, options.Overload - 1));
        var workers = Enumerable.Range(0, options.Clients + burstClients).Select(w => Task.Run(async () =>
        {
            var random = new Random(HashCode.Combine(options.Seed, w));
            var polite = IsPolite(w);
            var burstOnly = w >= options.Clients;
            while (!cancellation.IsCancellationRequested)
            {
                if (burstOnly && !InBurst(stopwatch.Elapsed))
                {
                    if (Finished(stopwatch, Interlocked.Read(ref issued)))
                    {
                        return;
                    }

                    await Task.Delay(20, cancellation);
                    continue;
                }

                var size = options.BatchSize;
                var n = Interlocked.Add(ref issued, size);
                if (Finished(stopwatch, n - size))
                {
                    return;
                }

                if (size > 1)
                {
                    await TransferBatch(n - size + 1, size, random, polite, cancellation);
                    continue;
                }

                if (!await Transfer(n, random, polite, Stopwatch.GetTimestamp(), cancellation))
                {
                    // Refused by its own throttle or bulkhead: a closed-loop client has no arrival
                    // schedule to pace it, so it pauses as after a failed attempt instead of spinning.
                    await Task.Delay(Backoff(1, random), cancellation);
                }
            }
        }, cancellation)).ToArray();
        await Task.WhenAll(workers);
    }

    private async Task RunOpenLoop(double rate, Stopwatch stopwatch, CancellationToken cancellation)
    {
        var tickets = Channel.CreateBounded<(long N, long ScheduledAt)>(new BoundedChannelOptions(MaxQueuedTickets)
        {
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        var workers = Enumerable.Range(0, options.Clients).Select(w => Task.Run(async () =>
        {
            var random = new Random(HashCode.Combine(options.Seed, w));
            await foreach (var (n, scheduledAt) in tickets.Reader.ReadAllAsync(cancellation))
            {
                // Latency counts from when the transfer was due, not when a client got free (no coordinated omission).
                // Whether it is polite goes with the transfer, not the worker: a polite worker whose
                // refusals cost nothing would otherwise take more than its share of the tickets.
                await Transfer(n, random, IsPoliteTransfer(n), scheduledAt, cancellation);
            }
        }, cancellation)).ToArray();

        await foreach (var ticket in Schedule(rate, stopwatch, cancellation))
        {
            if (!tickets.Writer.TryWrite(ticket))
            {
                _stats.DroppedByGenerator();
            }
        }

        tickets.Writer.Complete();
        await Task.WhenAll(workers);
    }

    /// <summary>
    /// Sends each transfer when it is due, without waiting for earlier ones: the offered load is the
    /// rate, whatever the ledger does with it, up to <see cref="LoadOptions.MaxInFlight"/> in flight.
    /// </summary>
    private async Task RunTrueOpenLoop(double rate, Stopwatch stopwatch, CancellationToken cancellation)
    {
        // One for the generator itself, so that the count reaches zero only after it stopped issuing.
        long outstanding = 1;
        var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Done()
        {
            if (Interlocked.Decrement(ref outstanding) == 0)
            {
                drained.TrySetResult();
            }
        }

        await foreach (var (number, scheduledAt) in Schedule(rate, stopwatch, cancellation))
        {
            if (Interlocked.Read(ref outstanding) - 1 >= options.MaxInFlight)
            {
                _stats.DroppedByGenerator();
                continue;
            }

            Interlocked.Increment(ref outstanding);
            _ = Task.Run(async () =>
            {
                try
                {
                    await Transfer(number, new Random(HashCode.Combine(options.Seed, number)), IsPoliteTransfer(number), scheduledAt, cancellation);
                }
                catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
                {
                }
                finally
                {
                    Done();
                }
            }, CancellationToken.None);
        }

        Done();
        await drained.Task.WaitAsync(cancellation);
    }

    /// <summary>
    /// The open loop's arrivals: transfer numbers 1, 2, ... each with the timestamp at which it is due
    /// (at <paramref name="rate"/> per second, times <see cref="LoadOptions.Overload"/> in a burst),
    /// yielded as it falls due, until the run is finished or cancelled.
    /// </summary>
    private async IAsyncEnumerable<(long N, long ScheduledAt)> Schedule(
        double rate, Stopwatch stopwatch, [EnumeratorCancellation] CancellationToken cancellation)
    {
        long n = 0;
        var start = Stopwatch.GetTimestamp();
        double due = 0;
        while (!Finished(stopwatch, n) && !cancellation.IsCancellationRequested)
        {
            var now = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (now < due)
            {
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(due - now, 0.05)), cancellation);
                continue;
            }

            n++;
            var scheduledAt = start + (long)(due * Stopwatch.Frequency);
            due += 1.0 / (rate * (InBurst(stopwatch.Elapsed) ? options.Overload : 1.0));
            yield return (n, scheduledAt);
        }
    }

    private bool Finished(Stopwatch stopwatch, long issuedBefore) =>
        options.Duration is { } duration ? stopwatch.Elapsed >= duration : issuedBefore >= options.Transfers;

    private bool InBurst(TimeSpan elapsed) =>
        options.Overload > 1 && elapsed.Ticks % BurstEvery.Ticks < BurstLength.Ticks;

    private bool IsPolite(int client) => client < Math.Round(options.Clients * options.PoliteShare);

    /// <summary>In the open loops a transfer, not a client, is polite or not: the share of the offered transfers is the configured one.</summary>
    private bool IsPoliteTransfer(long transfer) => IsPolite((int)(transfer % options.Clients));

    /// <summary>
    /// Sends one transfer, retrying transient failures under the same idempotency key. False when a
    /// polite client refused it itself, without sending it.
    /// </summary>
    private async Task<bool> Transfer(long n, Random random, bool polite, long startedAt, CancellationToken cancellation)
    {
        var from = Pick(random);
        var to = Pick(random);
        while (to == from)
        {
            to = Pick(random);
        }

        var key = $"lg-{options.RunId}-t{n}";
        var body = $$"""{"from":"{{_accounts[from]}}","to":"{{_accounts[to]}}","amount":{{Str(random.NextInt64(1, options.MaxAmountMinor + 1))}},"currency":"USD"}""";
        _stats.Started();
        if (polite && _polite is { } resilient)
        {
            return await PoliteTransfer(resilient, key, body, startedAt, cancellation);
        }

        var replayed = false;
        for (var attempt = 1; ; attempt++)
        {
            _stats.Attempt();
            TimeSpan? retryAfter = null;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                timeout.CancelAfter(options.RequestTimeout);
                using var request = Json(HttpMethod.Post, "/transfers", body, key);
                var sent = Stopwatch.GetTimestamp();
                using var response = await http.SendAsync(request, timeout.Token);
                var answered = Stopwatch.GetTimestamp();
                replayed |= response.Headers.Contains("Idempotent-Replayed");
                var status = (int)response.StatusCode;
                if (status is 201)
                {
                    Track(key);
                    _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: true, null, gaveUp: false, replayed, answered - sent);
                    return true;
                }

                if (status is 400 or 404 or 409 or 422)
                {
                    var code = await Code(response, cancellation);
                    _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: false, code, gaveUp: false, replayed, answered - sent);
                    return true;
                }

                if (status == 429)
                {
                    _stats.RateLimited();
                }

                _stats.Error(status == 429 ? "429" : status.ToString(CultureInfo.InvariantCulture));
                retryAfter = response.Headers.RetryAfter?.Delta;
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                _stats.Error("timeout");
            }
            catch (HttpRequestException)
            {
                _stats.Error("connection");
            }

            if (attempt >= options.MaxAttempts)
            {
                // Outcome unknown: the books check still holds, because a retry never applies twice.
                _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: false, null, gaveUp: true, replayed);
                return true;
            }

            _stats.Retry();
            if (polite)
            {
                await Task.Delay(Wait(attempt, random, retryAfter, capRetryAfter: false), cancellation);
            }
        }
    }

    /// <summary>
    /// One transfer of a polite client: its throttle and bulkhead may refuse it before it is sent
    /// (false, counted, given up); the resilience pipeline retries transient failures under the same
    /// key. While the circuit breaker is open the client sends nothing: it waits until the breaker
    /// may let a probe through, and gives up once the transfer is older than
    /// <see cref="LoadOptions.MaxAttempts"/> break durations.
    /// </summary>
    private async Task<bool> PoliteTransfer(PoliteClient client, string key, string body, long startedAt, CancellationToken cancellation)
    {
        var replayed = false;
        while (true)
        {
            using var lease = await client.EnterAsync(cancellation);
            if (!lease.IsAcquired)
            {
                _stats.Error(PoliteClient.Refusal(lease));
                _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: false, null, gaveUp: true, replayed);
                return false;
            }

            try
            {
                using var request = Json(HttpMethod.Post, "/transfers", body, key);
                using var response = await client.Http.SendAsync(request, cancellation);
                long? answered = request.Options.TryGetValue(PoliteHttp.LastAttemptTicks, out var ticks) ? ticks : null;
                replayed |= response.Headers.Contains("Idempotent-Replayed");
                var status = (int)response.StatusCode;
                if (status is 201)
                {
                    Track(key);
                    _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: true, null, gaveUp: false, replayed, answered);
                    return true;
                }

                if (status is 400 or 404 or 409 or 422)
                {
                    _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: false, await Code(response, cancellation), gaveUp: false, replayed, answered);
                    return true;
                }

                // Still failing after every retry the pipeline allows: outcome unknown, given up.
                break;
            }
            catch (BrokenCircuitException open) when (Stopwatch.GetElapsedTime(startedAt) < options.BreakerBreakDuration * options.MaxAttempts)
            {
                // Until the breaker may let a probe through (at least a little while: while another
                // client's probe is out, the breaker says "now" again at once). Bounded by time, not
                // by rounds: a slow probe must not use up a transfer's patience in a busy loop. The
                // bulkhead place is given back while waiting.
                _stats.Error("circuit_open");
                lease.Dispose();
                var wait = open.RetryAfter is { } retryAfter && retryAfter > MinCircuitWait ? retryAfter : MinCircuitWait;
                await Task.Delay(wait, cancellation);
            }
            catch (Exception refused) when (refused is HttpRequestException || PoliteHttp.IsRefusal(refused))
            {
                break;
            }
        }

        _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: false, null, gaveUp: true, replayed);
        return true;
    }

    /// <summary>
    /// Sends transfers <paramref name="first"/> to <paramref name="first"/> + <paramref name="count"/> - 1
    /// in one <c>POST /transfers/batch</c>; items that fail transiently (or the whole request) are sent
    /// again, under the same keys, in the next attempt's batch. Each transfer's latency is its batch's.
    /// </summary>
    private async Task TransferBatch(long first, int count, Random random, bool polite, CancellationToken cancellation)
    {
        var startedAt = Stopwatch.GetTimestamp();
        var items = new List<(string Key, string Json)>(count);
        for (var n = first; n < first + count; n++)
        {
            var from = Pick(random);
            var to = Pick(random);
            while (to == from)
            {
                to = Pick(random);
            }

            var key = $"lg-{options.RunId}-t{n}";
            items.Add((key, $$"""{"id":"{{key}}","from":"{{_accounts[from]}}","to":"{{_accounts[to]}}","amount":{{Str(random.NextInt64(1, options.MaxAmountMinor + 1))}},"currency":"USD"}"""));
            _stats.Started();
        }

        for (var attempt = 1; items.Count > 0; attempt++)
        {
            _stats.Attempt();
            TimeSpan? retryAfter = null;
            var retry = new List<(string Key, string Json)>();
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                timeout.CancelAfter(options.RequestTimeout);
                using var request = Json(HttpMethod.Post, "/transfers/batch", "[" + string.Join(",", items.Select(i => i.Json)) + "]", key: null);
                var sent = Stopwatch.GetTimestamp();
                using var response = await http.SendAsync(request, timeout.Token);
                var answered = Stopwatch.GetTimestamp();
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    _stats.Error(((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
                    retryAfter = response.Headers.RetryAfter?.Delta;
                    retry = items;
                }
                else
                {
                    var body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellation);
                    foreach (var (result, item) in body.GetProperty("results").EnumerateArray().Zip(items))
                    {
                        var status = result.GetProperty("status").GetInt32();
                        var replayed = result.GetProperty("replayed").GetBoolean();
                        if (status == 201)
                        {
                            Track(item.Key);
                            _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: true, null, gaveUp: false, replayed, answered - sent);
                        }
                        else if (status is 400 or 404 or 409 or 422)
                        {
                            var code = result.GetProperty("problem").GetProperty("code").GetString();
                            _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: false, code, gaveUp: false, replayed, answered - sent);
                        }
                        else
                        {
                            _stats.Error(status.ToString(CultureInfo.InvariantCulture));
                            retry.Add(item);
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                _stats.Error("timeout");
                retry = items;
            }
            catch (HttpRequestException)
            {
                _stats.Error("connection");
                retry = items;
            }

            items = retry;
            if (items.Count == 0)
            {
                return;
            }

            if (attempt >= options.MaxAttempts)
            {
                foreach (var _ in items)
                {
                    _stats.Ended(Stopwatch.GetTimestamp() - startedAt, committed: false, null, gaveUp: true, replayed: false);
                }

                return;
            }

            _stats.Retry();
            if (polite)
            {
                await Task.Delay(Wait(attempt, random, retryAfter, capRetryAfter: false), cancellation);
            }
        }
    }

    /// <summary>
    /// How long a polite client waits before its next attempt: the backoff, or the server's
    /// Retry-After when that is longer (with <paramref name="capRetryAfter"/>, only when it is also
    /// shorter than <see cref="LoadOptions.BackoffCap"/>).
    /// </summary>
    private TimeSpan Wait(int attempt, Random random, TimeSpan? retryAfter, bool capRetryAfter)
    {
        var wait = Backoff(attempt, random);
        return retryAfter is { } ra && ra > wait && (!capRetryAfter || ra < options.BackoffCap) ? ra : wait;
    }

    /// <summary>Exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)].</summary>
    private TimeSpan Backoff(int attempt, Random random)
    {
        var ceiling = Math.Min(options.BackoffCap.TotalMilliseconds, options.BackoffBase.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 20)));
        return TimeSpan.FromMilliseconds(random.NextDouble() * ceiling);
    }

    private int Pick(Random random)
    {
        if (options.Skew == Skew.Uniform)
        {
            return random.Next(_accounts.Length);
        }

        var index = Array.BinarySearch(_zipfCdf, random.NextDouble());
        return Math.Min(index < 0 ? ~index : index, _accounts.Length - 1);
    }

    private void Track(string key)
    {
        if (Interlocked.Increment(ref _committedTracked) <= options.MaxTrackedCommits)
        {
            _committed.Enqueue(key);
        }
    }

    private static long CreditLimitOf(JsonElement account) =>
        account.TryGetProperty("allow_overdraft", out var overdraft) && overdraft.GetBoolean() && account.TryGetProperty("credit_limit", out var limit) ? limit.GetInt64() : 0;

    /// <summary>
    /// The books, through the API: money conserved (the sum of totals, which may include negative
    /// balances of accounts with an overdraft, is what was put in), no available below its floor,
    /// nothing stuck, every seen commit visible.
    /// </summary>
    private async Task<List<string>> CheckBooks(CancellationToken cancellation)
    {
        var failures = new ConcurrentBag<string>();
        var expected = checked(options.InitialBalanceMinor * options.Accounts);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        string? previous = null;
        while (true)
        {
            var accounts = new ConcurrentBag<JsonElement>();
            await Parallel.ForEachAsync(_accounts, new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = cancellation }, async (id, ct) =>
            {
                var (response, status) = await GetPatiently($"/accounts/{id}", ct);
                using (response)
                {
                    if (!response.IsSuccessStatusCode)
                    {
                        throw new InvalidOperationException($"Account {id} could not be read: {status}");
                    }

                    accounts.Add(await response.Content.ReadFromJsonAsync<JsonElement>(ct));
                }
            });
            var inFlight = accounts.Sum(a => a.GetProperty("reserved").GetInt64() + a.GetProperty("incoming").GetInt64());
            if (inFlight != 0 && DateTime.UtcNow < deadline)
            {
                // Transfers given up on by their clients may still be finishing (recovery): wait for them.
                await Task.Delay(1_000, cancellation);
                continue;
            }

            // The accounts are read one by one, not at one instant: a movement that recovery begins
            // and ends between the reads of its two accounts (listed, but not yet prepared, when the
            // first was read) is seen on one side only, with nothing in flight. Two reads in a row
            // that agree on every account show books that were still while both were read.
            var snapshot = string.Join('\n', accounts.Select(a => a.GetRawText()).Order(StringComparer.Ordinal));
            if (snapshot != previous && DateTime.UtcNow < deadline)
            {
                previous = snapshot;
                await Task.Delay(500, cancellation);
                continue;
            }

            var total = accounts.Sum(a => a.GetProperty("total").GetInt64());
            if (inFlight != 0)
            {
                failures.Add($"{inFlight} minor units still in flight after 60 s");
            }

            if (total != expected)
            {
                failures.Add($"sum of totals {total} != money put in {expected}");
            }

            // Available may go below zero only as far as an account's credit limit allows (0 unless it allows an overdraft).
            foreach (var a in accounts.Where(a => a.GetProperty("available").GetInt64() < -CreditLimitOf(a)))
            {
                failures.Add($"account {a.GetProperty("id").GetString()} has available {a.GetProperty("available").GetInt64()}, below its floor of {-CreditLimitOf(a)}");
            }

            break;
        }

        await Parallel.ForEachAsync(_committed, new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = cancellation }, async (key, ct) =>
        {
            // A commit whose record is still being completed reads pending for a moment (recovery
            // finishes it); under chaos a read may also fail transiently. Neither is a wrong answer
            // yet: ask again, within the bound, and judge the last answer.
            string? status = null;
            for (var attempt = 1; attempt <= MaxCheckAttempts; attempt++)
            {
                var (response, code) = await GetPatiently($"/transfers/{Uri.EscapeDataString(key)}", ct);
                using (response)
                {
                    status = response.IsSuccessStatusCode ? (await response.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("status").GetString() : code;
                }

                if (status != "pending")
                {
                    break;
                }

                await Task.Delay(CheckRetryDelay, ct);
            }

            if (status != "committed")
            {
                failures.Add($"transfer {key} was answered committed but reads as {status}");
            }
        });
        return [.. failures.Take(100)];
    }

    /// <summary>
    /// A GET of the books check, asked again while the answer is transient (429, 5xx, no connection),
    /// at most <see cref="MaxCheckAttempts"/> times: the last response and its status as text.
    /// </summary>
    private async Task<(HttpResponseMessage Response, string Status)> GetPatiently(string path, CancellationToken cancellation)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var response = await http.GetAsync(path, cancellation);
                if (!IsTransient(response.StatusCode) || attempt >= MaxCheckAttempts)
                {
                    return (response, ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
                }

                response.Dispose();
            }
            catch (HttpRequestException) when (attempt < MaxCheckAttempts)
            {
            }

            await Task.Delay(CheckRetryDelay, cancellation);
        }
    }

    private static async Task<string> Code(HttpResponseMessage response, CancellationToken cancellation)
    {
        try
        {
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>(cancellation);
            return problem.TryGetProperty("code", out var code) ? code.GetString() ?? "unknown" : "unknown";
        }
        catch (JsonException)
        {
            return ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
        }
    }

    private static bool IsTransient(HttpStatusCode status) =>
        status is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable or HttpStatusCode.BadGateway or HttpStatusCode.GatewayTimeout or HttpStatusCode.InternalServerError;

    private static HttpRequestMessage Json(HttpMethod method, string path, string json, string? key)
    {
        var request = new HttpRequestMessage(method, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        return request;
    }

    private static string Str(long value) => value.ToString(CultureInfo.InvariantCulture);
}
