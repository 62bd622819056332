using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;

namespace Transactor.ServiceDefaults;

/// <summary>
/// Who may open the Orleans Dashboard a host serves (docs/security.md, "Operational endpoints"). It
/// shows every grain, silo and method of the cluster, so it is not for anyone who can reach the port:
/// with <see cref="PasswordKey"/> set, a browser asks for that password (HTTP Basic, any user name,
/// compared in constant time); without it, only connections from this machine (loopback) get it,
/// which is what local development (the embedded ledger, run-cluster.sh, the AppHost) uses.
/// </summary>
public static class DashboardAccess
{
    /// <summary>
    /// Whether a host runs the Orleans Dashboard at all (true by default). It is not free: it listens
    /// to every Orleans instrument and puts a filter on every grain call, which cost the embedded
    /// ledger 11-15 % of its transfers per second over HTTP (docs/benchmarks.md, "The Orleans
    /// Dashboard's cost"). Off, <c>/dashboard</c> answers 404.
    /// </summary>
    public const string EnabledKey = "Transactor:Dashboard:Enabled";

    /// <summary>What <see cref="EnabledKey"/> says (true when unset).</summary>
    public static bool Enabled(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return configuration.GetValue(EnabledKey, defaultValue: true);
    }

    /// <summary>The dashboard's password (at least <see cref="MinPasswordLength"/> characters); unset, the dashboard answers loopback only.</summary>
    public const string PasswordKey = "Transactor:Dashboard:Password";

    public const int MinPasswordLength = 16;

    /// <summary>Guards every request under <paramref name="prefix"/>; call before the dashboard is mapped.</summary>
    public static WebApplication UseDashboardAccess(this WebApplication app, string prefix)
    {
        ArgumentNullException.ThrowIfNull(app);
        var password = app.Configuration[PasswordKey];
        if (password is { Length: > 0 and < MinPasswordLength })
        {
            throw new InvalidOperationException($"{PasswordKey} must be at least {MinPasswordLength} characters.");
        }

        var expected = password is { Length: > 0 } ? SHA256.HashData(Encoding.UTF8.GetBytes(password)) : null;
        app.UseWhen(context => context.Request.Path.StartsWithSegments(prefix), branch => branch.Use(async (context, next) =>
        {
            if (expected is null ? IsLoopback(context) : HasPassword(context.Request, expected))
            {
                await next(context);
                return;
            }

            if (expected is not null)
            {
                context.Response.Headers.WWWAuthenticate = "Basic realm=\"Orleans Dashboard\", charset=\"UTF-8\"";
                await Refuse(context, StatusCodes.Status401Unauthorized, "dashboard_password_required", "The Orleans Dashboard needs its password.",
                    $"Sign in with the password set in {PasswordKey} (any user name).");
                return;
            }

            await Refuse(context, StatusCodes.Status403Forbidden, "dashboard_local_only", "The Orleans Dashboard answers this machine only.",
                $"Open it from the host itself, or set {PasswordKey} to open it from elsewhere with a password.");
        }));
        return app;
    }

    private static bool IsLoopback(HttpContext context) =>
        context.Connection.RemoteIpAddress is { } address && System.Net.IPAddress.IsLoopback(address);

    private static bool HasPassword(HttpRequest request, byte[] expected)
    {
        if (request.Headers.Authorization is not [{ } header] || !header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase) || header.Length > 1024)
        {
            return false;
        }

        var encoded = Encoding.ASCII.GetBytes(header[6..].Trim());
        if (Base64.DecodeFromUtf8InPlace(encoded, out var length) != System.Buffers.OperationStatus.Done)
        {
            return false;
        }

        var credentials = encoded.AsSpan(0, length);
        var colon = credentials.IndexOf((byte)':');
        return colon >= 0 && CryptographicOperations.FixedTimeEquals(SHA256.HashData(credentials[(colon + 1)..]), expected);
    }

    private static Task Refuse(HttpContext context, int status, string code, string title, string detail) =>
        Results.Problem(detail, statusCode: status, title: title, type: $"/problems/{code}", extensions: new Dictionary<string, object?> { ["code"] = code }).ExecuteAsync(context);
}
