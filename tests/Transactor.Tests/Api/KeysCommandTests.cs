using System.CommandLine;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Transactor.Cli;

namespace Transactor.Tests.Api;

/// <summary><c>transactor keys create|list|revoke</c> against the API (in memory, through the test server's handler).</summary>
[Collection(ApiTestGroup.Name)]
public sealed class KeysCommandTests(ApiFixture api)
{
    [Fact]
    public async Task Keys_are_created_listed_and_revoked_from_the_command_line()
    {
        var created = await Run("keys", "create", "--name", "cli test", "--role", "client", "--rate-per-second", "50");
        Assert.Equal(ExitCodes.Success, created.ExitCode);
        var details = JsonDocument.Parse(created.Output).RootElement;
        var key = details.GetProperty("key").GetString()!;
        var id = details.GetProperty("details").GetProperty("id").GetString()!;
        Assert.Equal(50, details.GetProperty("details").GetProperty("rate_per_second").GetInt32());

        using var client = api.Server.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var account = await client.OpenAccount();

        var listed = await Run("keys", "list");
        Assert.Equal(ExitCodes.Success, listed.ExitCode);
        Assert.Contains(JsonDocument.Parse(listed.Output).RootElement.EnumerateArray(), k => k.GetProperty("id").GetString() == id);
        Assert.DoesNotContain(key, listed.Output, StringComparison.Ordinal);

        var revoked = await Run("keys", "revoke", id);
        Assert.Equal(ExitCodes.Success, revoked.ExitCode);
        Assert.Equal("revoked", JsonDocument.Parse(revoked.Output).RootElement.GetProperty("state").GetString());
        using var refused = await client.GetAsync($"/accounts/{account}");
        await refused.AssertProblem(HttpStatusCode.Unauthorized, "api_key_revoked");

        // A client key may not manage keys; no key at all is a usage error.
        var forbidden = await Run(["keys", "list"], apiKey: key);
        Assert.Equal(ExitCodes.Refused, forbidden.ExitCode);
        Assert.Contains("\"code\":\"api_key_revoked\"", forbidden.Errors, StringComparison.Ordinal);
        var missing = await Run(["keys", "list"], apiKey: "");
        Assert.Equal(ExitCodes.BadInput, missing.ExitCode);
    }

    private Task<(int ExitCode, string Output, string Errors)> Run(params string[] args) => Run(args, ApiFixture.AdminKey);

    private async Task<(int ExitCode, string Output, string Errors)> Run(string[] args, string apiKey)
    {
        var output = new MemoryStream();
        var errors = new StringWriter();
        var streams = new StandardStreams(() => new MemoryStream(), () => output, errors, ErrorIsTerminal: false);
        var command = TransactorCommand.Create(streams, () => api.Server.CreateHandler());
        var exitCode = await command.Parse([.. args, "--target", "http://localhost", "--api-key", apiKey]).InvokeAsync(new InvocationConfiguration { Output = new StringWriter(), Error = errors });
        return (exitCode, Encoding.UTF8.GetString(output.ToArray()), errors.ToString());
    }
}
