using System.CommandLine;
using System.Text.Json;
using Spectre.Console;
using Transactor.LoadGen;

var target = new Option<Uri>("--target")
{
    Description = "Base URL of the Transactor API.",
    DefaultValueFactory = _ => new Uri("http://localhost:5080"),
    CustomParser = result =>
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
        {
            return uri;
        }

        result.AddError($"--target must be an absolute http(s) URL, not '{text}'.");
        return null;
    },
};
var clients = new Option<int>("--clients") { Description = "Concurrent clients.", DefaultValueFactory = _ => 64 };
var transfers = new Option<long>("--transfers") { Description = "Transfers to send (unless --duration is given).", DefaultValueFactory = _ => 10_000 };
var duration = new Option<double?>("--duration") { Description = "Seconds to run instead of a transfer count." };
var accounts = new Option<int>("--accounts") { Description = "Accounts to open and transfer between.", DefaultValueFactory = _ => 1_000 };
var balance = new Option<long>("--initial-balance") { Description = "Minor units deposited into each account.", DefaultValueFactory = _ => 1_000_000 };
var skew = new Option<Skew>("--skew") { Description = "How accounts are picked: uniform, or zipf (a few hot accounts).", DefaultValueFactory = _ => Skew.Uniform };
var rate = new Option<double?>("--rate") { Description = "Open loop at this many transfers/s (default: closed loop)." };
var seed = new Option<int>("--seed") { Description = "Seed for reproducible runs.", DefaultValueFactory = _ => 1 };
var polite = new Option<double>("--polite") { Description = "Share of clients (0-1) that back off with jitter and honour Retry-After; the rest retry at once.", DefaultValueFactory = _ => 1.0 };
var maxAttempts = new Option<int>("--max-attempts") { Description = "Attempts per transfer before a client gives up on it.", DefaultValueFactory = _ => 8 };
var overload = new Option<double>("--overload") { Description = "Multiply the offered load by this in 3 s bursts every 10 s (1 = no bursts).", DefaultValueFactory = _ => 1.0 };
var openLoop = new Option<bool>("--open-loop") { Description = "With --rate: send every transfer when it is due, without waiting for earlier answers (a true open loop; --clients then only sets which share is polite)." };
var maxInFlight = new Option<int>("--max-in-flight") { Description = "Safety cap of --open-loop: transfers due while this many are unanswered are not sent (reported as dropped by the generator).", DefaultValueFactory = _ => 10_000 };
var bulkhead = new Option<int>("--bulkhead") { Description = "Polite requests in flight at once (as many more wait); beyond that a polite client refuses its own request.", DefaultValueFactory = _ => 512 };
var throttleK = new Option<double>("--throttle-k") { Description = "Polite clients' adaptive throttle: once the ledger sheds, send at most about K requests per accepted one (over 2 s) and refuse the rest locally; 0 turns it off.", DefaultValueFactory = _ => 2.0 };
var breakerBreak = new Option<double>("--breaker-break") { Description = "Seconds the polite clients' circuit breaker stays open before it lets a probe through.", DefaultValueFactory = _ => 1.0 };
var output = new Option<FileInfo?>("--out") { Description = "Also write the summary as JSON to this file." };
var quiet = new Option<bool>("--quiet") { Description = "No live progress, only the summary." };
var apiKey = new Option<string?>("--api-key")
{
    Description = "API key sent as 'Authorization: Bearer <key>' (default: the TRANSACTOR_API_KEY environment variable). A client key owns the accounts the run opens.",
    DefaultValueFactory = _ => Environment.GetEnvironmentVariable("TRANSACTOR_API_KEY") is { Length: > 0 } key ? key : null,
};
var sign = new Option<bool>("--sign") { Description = "Sign every request with the key's secret (HMAC, docs/security.md); needs a stored key (txk.<id>.<secret>)." };
var batch = new Option<int>("--batch") { Description = "Transfers per request: above 1, each client sends POST /transfers/batch with this many (closed loop only).", DefaultValueFactory = _ => 1 };
var ping = new Option<bool>("--ping") { Description = "Measure the HTTP ceiling instead: the clients send GET /alive (no ledger work) for --duration seconds (default 10)." };

var root = new RootCommand("Transactor load generator: opens and funds accounts, sends concurrent transfers over HTTP, then checks the books. Exits 1 if a check fails.")
{
    target, clients, transfers, duration, accounts, balance, skew, rate, seed, polite, maxAttempts, overload, openLoop, maxInFlight, bulkhead, throttleK, breakerBreak, output, quiet, ping, apiKey, sign, batch,
};
root.SetAction(async (parse, cancellation) =>
{
    var options = new LoadOptions
    {
        Target = parse.GetValue(target)!,
        Clients = parse.GetValue(clients),
        Transfers = parse.GetValue(transfers),
        Duration = parse.GetValue(duration) is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
        Accounts = parse.GetValue(accounts),
        InitialBalanceMinor = parse.GetValue(balance),
        Skew = parse.GetValue(skew),
        Rate = parse.GetValue(rate),
        Seed = parse.GetValue(seed),
        PoliteShare = Math.Clamp(parse.GetValue(polite), 0, 1),
        MaxAttempts = Math.Max(1, parse.GetValue(maxAttempts)),
        Overload = Math.Max(1, parse.GetValue(overload)),
        OpenLoop = parse.GetValue(openLoop),
        MaxInFlight = Math.Max(1, parse.GetValue(maxInFlight)),
        BulkheadLimit = Math.Max(1, parse.GetValue(bulkhead)),
        ThrottleK = Math.Max(0, parse.GetValue(throttleK)),
        BreakerBreakDuration = TimeSpan.FromSeconds(Math.Max(0.5, parse.GetValue(breakerBreak))),
        BatchSize = Math.Clamp(parse.GetValue(batch), 1, 1_000),
    };
    // An open loop may have up to --max-in-flight requests outstanding; connections are its bound then.
    var connections = options.OpenLoop ? Math.Max(options.Clients * 2, Math.Min(options.MaxInFlight, 1_024)) : options.Clients * 2;
    using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
    using HttpMessageHandler outer = parse.GetValue(sign) && parse.GetValue(apiKey) is { } signingKey ? new SigningHandler(signingKey, handler) : handler;
    using var http = new HttpClient(outer, disposeHandler: false) { BaseAddress = options.Target, Timeout = Timeout.InfiniteTimeSpan };
    if (parse.GetValue(apiKey) is { } key)
    {
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
    }
    else
    {
        Console.Error.WriteLine("No API key (--api-key or TRANSACTOR_API_KEY): the API will answer 401 to every ledger request.");
    }

    if (parse.GetValue(ping))
    {
        var pinged = await PingRunner.RunAsync(http, options.Clients, options.Duration ?? TimeSpan.FromSeconds(10), cancellation);
        Console.WriteLine(pinged);
        if (parse.GetValue(output) is { } pingFile)
        {
            await File.WriteAllTextAsync(pingFile.FullName, JsonSerializer.Serialize(pinged, LoadReport.Json), cancellation);
        }

        return pinged.Requests > 0 && pinged.Failed == 0 ? 0 : 1;
    }

    var runner = new LoadRunner(http, options, politeTransport: outer);
    var interactive = !parse.GetValue(quiet) && !Console.IsOutputRedirected;
    Summary summary;
    if (interactive)
    {
        summary = await AnsiConsole.Live(new Markup("Opening and funding accounts...")).StartAsync(async live =>
            await runner.RunAsync((stats, elapsed) => live.UpdateTarget(LoadReport.Render(stats, elapsed)), cancellation));
    }
    else
    {
        var lastLine = DateTime.MinValue;
        summary = await runner.RunAsync((stats, elapsed) =>
        {
            if (!parse.GetValue(quiet) && DateTime.UtcNow - lastLine > TimeSpan.FromSeconds(2))
            {
                lastLine = DateTime.UtcNow;
                Console.Error.WriteLine(LoadReport.Line(stats, elapsed));
            }
        }, cancellation);
    }

    LoadReport.PrintSummary(summary);
    if (parse.GetValue(output) is { } file)
    {
        await File.WriteAllTextAsync(file.FullName, JsonSerializer.Serialize(summary, LoadReport.Json), cancellation);
    }

    return summary.BooksBalanced ? 0 : 1;
});
return await root.Parse(args).InvokeAsync();
