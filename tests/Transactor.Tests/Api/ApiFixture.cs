using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Transactor.Tests.Api;

/// <summary>The API in its embedded mode (an in-process silo, in-memory storage), on free ports, shared by the API tests.</summary>
/// <remarks>
/// Its clients carry <see cref="AdminKey"/>, the bootstrap admin key it configures: tests of the
/// ledger act as an admin; tests of keys and owners (SecurityApiTests) create their own keys.
/// </remarks>
public sealed class ApiFixture : WebApplicationFactory<Program>
{
    /// <summary>The bootstrap admin key every API of these tests is configured with.</summary>
    public const string AdminKey = "test-admin-key-not-a-secret-0123456789";

    /// <summary>The gateway port of this fixture's embedded silo: another API can be a client of the same cluster.</summary>
    public int GatewayPort { get; } = FreePort();

    private int SiloPort { get; } = FreePort();

    /// <summary>A second API instance: an Orleans client of this fixture's embedded silo, so both share one ledger.</summary>
    public WebApplicationFactory<Program> SecondInstance(params (string Key, string Value)[] settings) => ClientOf(this, GatewayPort, settings);

    /// <summary>Another API instance: an Orleans client of <paramref name="ledger"/>'s embedded silo (gateway on <paramref name="gatewayPort"/>), so both share one ledger.</summary>
    public WebApplicationFactory<Program> ClientOf(WebApplicationFactory<Program> ledger, int gatewayPort, params (string Key, string Value)[] settings)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        var cluster = ledger.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Orleans.Configuration.ClusterOptions>>().Value;
        return WithSettings([
            ("Orleans:ClusterId", cluster.ClusterId),
            ("Orleans:ServiceId", cluster.ServiceId),
            ("Orleans:Clustering:ProviderType", "Development"),
            ("Orleans:Clustering:Gateways:0", $"127.0.0.1:{gatewayPort}"),
            .. settings]);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Transactor:Embedded:SiloPort", SiloPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseSetting("Transactor:Embedded:GatewayPort", GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        builder.UseSetting("Transactor:Auth:AdminKey", AdminKey);
    }

    protected override void ConfigureClient(HttpClient client)
    {
        base.ConfigureClient(client);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey);
    }

    /// <summary>Another API, with its own embedded silo on free ports, and these settings on top.</summary>
    public WebApplicationFactory<Program> WithSettings(params (string Key, string Value)[] settings) =>
        WithWebHostBuilder(builder =>
        {
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }

            UseFreeEmbeddedPorts(builder);
        });

    /// <summary>Another API, with its own embedded silo on free ports, and these services replaced.</summary>
    public WebApplicationFactory<Program> WithServices(Action<IServiceCollection> configure) =>
        WithWebHostBuilder(builder =>
        {
            UseFreeEmbeddedPorts(builder);
            builder.ConfigureTestServices(configure);
        });

    private static void UseFreeEmbeddedPorts(IWebHostBuilder builder)
    {
        builder.UseSetting("Transactor:Embedded:SiloPort", FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseSetting("Transactor:Embedded:GatewayPort", FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>A client of an API started elsewhere (a process), with <see cref="AdminKey"/>.</summary>
    public static HttpClient AdminClient(string baseUrl, TimeSpan? timeout = null)
    {
        var client = new HttpClient { BaseAddress = new Uri(baseUrl) };
        if (timeout is { } t)
        {
            client.Timeout = t;
        }

        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminKey);
        return client;
    }

    /// <summary>The environment variable that gives an API process <see cref="AdminKey"/>.</summary>
    public static KeyValuePair<string, string> AdminKeySetting { get; } = new("Transactor__Auth__AdminKey", AdminKey);

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

[CollectionDefinition(Name)]
public sealed class ApiTestGroup : ICollectionFixture<ApiFixture>
{
    public const string Name = "api";
}

/// <summary>Helpers that speak the API's JSON.</summary>
internal static class Http
{
    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static HttpRequestMessage Post(string path, string json, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(json) };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        return request;
    }

    public static async Task<JsonElement> Body(this HttpResponseMessage response) =>
        await response.Content.ReadFromJsonAsync<JsonElement>();

    public static async Task<string> OpenAccount(this HttpClient client, long depositMinor = 0, string currency = "USD")
    {
        var id = $"acct-{Guid.NewGuid():N}";
        using var open = await client.SendAsync(Post("/accounts", $$"""{"id":"{{id}}","currency":"{{currency}}"}"""));
        Assert.Equal(HttpStatusCode.Created, open.StatusCode);
        if (depositMinor > 0)
        {
            using var deposit = await client.SendAsync(Post($"/accounts/{id}/deposits", $$"""{"amount":{{depositMinor}}}""", $"dep-{Guid.NewGuid():N}"));
            Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
        }

        return id;
    }

    public static async Task<long> Available(this HttpClient client, string id)
    {
        var body = await client.GetFromJsonAsync<JsonElement>($"/accounts/{id}");
        return body.GetProperty("available").GetInt64();
    }

    /// <summary>Asserts a problem response: status, content type, and the stable code in both <c>type</c> and <c>code</c>.</summary>
    public static async Task<JsonElement> AssertProblem(this HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status} {code}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonDocument.Parse(text).RootElement;
        Assert.Equal(code, body.GetProperty("code").GetString());
        Assert.Equal($"/problems/{code}", body.GetProperty("type").GetString());
        Assert.Equal((int)status, body.GetProperty("status").GetInt32());
        return body;
    }
}
