using System.Security.Cryptography.X509Certificates;

namespace Transactor.AppHost;

/// <summary>
/// Lets plain <c>dotnet run --project AppHost</c> start on a machine without a trusted ASP.NET Core
/// development certificate. The first launch profile asks for https; without a certificate the
/// dashboard would fail with "Unable to configure HTTPS endpoint". There, the AppHost switches to
/// the http profile's addresses (what <c>--launch-profile http</c> gives) and says so.
/// </summary>
internal static class DevelopmentCertificate
{
    // Marks the certificate `dotnet dev-certs https` makes.
    private const string AspNetHttpsOid = "1.3.6.1.4.1.311.84.1.1";

    private static readonly string[] s_addressVariables = ["ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL", "ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL"];

    /// <summary>
    /// Switches to http when https is asked for and no trusted certificate exists: the dashboard keeps
    /// only its http addresses (the https profile lists both), the OTLP and resource-service
    /// addresses keep their ports with the http scheme. Returns a line saying so, else null.
    /// </summary>
    public static string? FallBackToHttpIfUntrusted()
    {
        var urls = Environment.GetEnvironmentVariable("ASPNETCORE_URLS");
        if (urls is null || !urls.Contains("https://", StringComparison.OrdinalIgnoreCase) || HasTrustedCertificate())
        {
            return null;
        }

        var all = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var plain = all.Where(url => url.StartsWith("http://", StringComparison.OrdinalIgnoreCase)).ToArray();
        Environment.SetEnvironmentVariable("ASPNETCORE_URLS", string.Join(';', plain.Length > 0 ? plain : all.Select(ToHttp)));
        foreach (var variable in s_addressVariables)
        {
            if (Environment.GetEnvironmentVariable(variable) is { } address)
            {
                Environment.SetEnvironmentVariable(variable, ToHttp(address));
            }
        }

        Environment.SetEnvironmentVariable("ASPIRE_ALLOW_UNSECURED_TRANSPORT", "true");
        return "No trusted ASP.NET Core development certificate: the Aspire dashboard runs on http (as with --launch-profile http). "
            + "For https, run 'dotnet dev-certs https --trust' and start again.";
    }

    private static string ToHttp(string url) =>
        url.StartsWith("https://", StringComparison.OrdinalIgnoreCase) ? "http://" + url["https://".Length..] : url;

    private static bool HasTrustedCertificate()
    {
        using var store = new X509Store(StoreName.My, StoreLocation.CurrentUser);
        try
        {
            store.Open(OpenFlags.ReadOnly | OpenFlags.OpenExistingOnly);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return false; // no certificate store yet: `dotnet dev-certs https` was never run
        }

        var now = DateTime.Now;
        foreach (var certificate in store.Certificates)
        {
            using (certificate)
            {
                if (certificate.Extensions[AspNetHttpsOid] is null || !certificate.HasPrivateKey || now < certificate.NotBefore || now > certificate.NotAfter)
                {
                    continue;
                }

                // Trusted means it chains to a root this machine trusts; for a self-signed certificate, that it is one.
                using var chain = new X509Chain();
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                if (chain.Build(certificate))
                {
                    return true;
                }
            }
        }

        return false;
    }
}
