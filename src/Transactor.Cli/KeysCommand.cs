using System.CommandLine;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Transactor.Cli;

/// <summary>
/// <c>transactor keys create|list|revoke</c>: manages API keys through a running API with an admin
/// key (docs/security.md). Prints the API's JSON answer on standard output; a refusal (a problem
/// document) goes to standard error with exit code <see cref="ExitCodes.Refused"/>.
/// </summary>
public static class KeysCommand
{
    /// <summary>The environment variable the admin key is read from when <c>--api-key</c> is not given.</summary>
    public const string ApiKeyVariable = "TRANSACTOR_API_KEY";

    /// <summary>The environment variable the API's URL is read from when <c>--target</c> is not given.</summary>
    public const string TargetVariable = "TRANSACTOR_URL";

    /// <summary>Builds <c>keys</c>; <paramref name="handler"/> sends the requests (tests give their own).</summary>
    public static Command Create(StandardStreams streams, Func<HttpMessageHandler>? handler = null)
    {
        ArgumentNullException.ThrowIfNull(streams);
        var target = new Option<string>("--target")
        {
            Description = $"Base URL of the Transactor API (default: ${TargetVariable}, else http://localhost:5080).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable(TargetVariable) is { Length: > 0 } url ? url : "http://localhost:5080",
            Recursive = true,
        };
        var apiKey = new Option<string?>("--api-key")
        {
            Description = $"An admin API key (default: ${ApiKeyVariable}).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable(ApiKeyVariable),
            Recursive = true,
        };
        var keys = new Command("keys", "Create, list and revoke API keys through the API (needs an admin key).") { target, apiKey };

        var name = new Option<string>("--name") { Description = "What the key is for.", Required = true };
        var role = new Option<string>("--role") { Description = "client (moves only its own accounts' money) or admin.", DefaultValueFactory = _ => "client" };
        role.AcceptOnlyFromAmong("client", "admin");
        var requireSignature = new Option<bool>("--require-signature") { Description = "Requests with this key must be signed (HMAC, docs/security.md)." };
        var rate = new Option<int?>("--rate-per-second") { Description = "This key's token refill rate (default: its role's)." };
        var burst = new Option<int?>("--burst") { Description = "This key's bucket size (default: its role's)." };
        var create = new Command("create", "Create a key; its secret is printed this once.") { name, role, requireSignature, rate, burst };
        create.SetAction((parse, cancellation) => Send(streams, handler, parse.GetValue(target)!, parse.GetValue(apiKey), HttpMethod.Post, "/keys",
            new JsonObject
            {
                ["name"] = parse.GetValue(name),
                ["role"] = parse.GetValue(role),
                ["require_signature"] = parse.GetValue(requireSignature),
                ["rate_per_second"] = parse.GetValue(rate),
                ["burst"] = parse.GetValue(burst),
            }, cancellation));

        var list = new Command("list", "List every key (never a secret).");
        list.SetAction((parse, cancellation) => Send(streams, handler, parse.GetValue(target)!, parse.GetValue(apiKey), HttpMethod.Get, "/keys", null, cancellation));

        var id = new Argument<string>("id") { Description = "The key id (the part after 'txk.' and before the next '.')." };
        var revoke = new Command("revoke", "Revoke a key: every API instance refuses it within seconds.") { id };
        revoke.SetAction((parse, cancellation) => Send(streams, handler, parse.GetValue(target)!, parse.GetValue(apiKey), HttpMethod.Delete,
            "/keys/" + Uri.EscapeDataString(parse.GetValue(id)!), null, cancellation));

        keys.Subcommands.Add(create);
        keys.Subcommands.Add(list);
        keys.Subcommands.Add(revoke);
        return keys;
    }

    private static async Task<int> Send(StandardStreams streams, Func<HttpMessageHandler>? handler, string target, string? apiKey, HttpMethod method, string path, JsonObject? body, CancellationToken cancellation)
    {
        if (string.IsNullOrEmpty(apiKey))
        {
            await streams.Error.WriteLineAsync($"transactor: an admin API key is needed: --api-key or ${ApiKeyVariable}.");
            await streams.Error.FlushAsync(cancellation);
            return ExitCodes.BadInput;
        }

        if (!Uri.TryCreate(target, UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
        {
            await streams.Error.WriteLineAsync($"transactor: --target must be an absolute http(s) URL, not '{target}'.");
            await streams.Error.FlushAsync(cancellation);
            return ExitCodes.BadInput;
        }

        using var http = handler is null ? new HttpClient() : new HttpClient(handler());
        http.BaseAddress = baseUri;
        http.Timeout = TimeSpan.FromSeconds(30);
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, cancellation);
        }
        catch (HttpRequestException e)
        {
            await streams.Error.WriteLineAsync($"transactor: cannot reach {baseUri}: {e.Message}");
            await streams.Error.FlushAsync(cancellation);
            return ExitCodes.CannotOpen;
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellation);
            if (!response.IsSuccessStatusCode)
            {
                await streams.Error.WriteLineAsync($"transactor: the API refused ({(int)response.StatusCode}): {text}");
                await streams.Error.FlushAsync(cancellation);
                return ExitCodes.Refused;
            }

            await using var output = streams.OpenOutput();
            await using var writer = new StreamWriter(output);
            await writer.WriteLineAsync(JsonSerializer.Serialize(JsonDocument.Parse(text).RootElement, Indented));
            return ExitCodes.Success;
        }
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
