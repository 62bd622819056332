using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Scalar.AspNetCore;
using Transactor.Api.Hosting;

namespace Transactor.Api.Security;

/// <summary>API keys, ownership and signed requests on ASP.NET Core's authentication and authorization (docs/security.md).</summary>
public static class ApiSecurity
{
    /// <summary>The console line the embedded ledger prints its generated admin key on; scripts read it.</summary>
    public const string AdminKeyLinePrefix = "Admin API key: ";

    /// <summary>
    /// Registers the key scheme, the policies and the services behind them. The embedded ledger
    /// without a configured admin key makes one up (printed once it listens, see <see cref="AnnounceAdminKey"/>).
    /// </summary>
    public static WebApplicationBuilder AddApiSecurity(this WebApplicationBuilder builder, LedgerMode mode)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var generated = mode == LedgerMode.Embedded && string.IsNullOrEmpty(builder.Configuration[$"{AuthOptions.SectionName}:{nameof(AuthOptions.AdminKey)}"])
            ? "txa." + ApiKeySecrets.NewSecret()
            : null;
        services.AddOptions<AuthOptions>()
            .Bind(builder.Configuration.GetSection(AuthOptions.SectionName))
            .PostConfigure(o => o.AdminKey ??= generated)
            .Validate(o => o.AdminKey is null || (o.AdminKey.Length >= AuthOptions.MinAdminKeyLength && !ApiKeySecrets.TryParse(o.AdminKey, out _)),
                $"{AuthOptions.SectionName}:{nameof(AuthOptions.AdminKey)} must be at least {AuthOptions.MinAdminKeyLength} characters, and not shaped like a stored key (txk.<id>.<secret>).")
            .Validate(o => o.KeyCacheTime > TimeSpan.Zero && o.MaxCachedKeys >= 1 && o.SignatureWindow > TimeSpan.Zero && o.SignatureMaxAhead >= TimeSpan.Zero,
                $"{AuthOptions.SectionName}: KeyCacheTime and SignatureWindow must be positive, SignatureMaxAhead not negative, MaxCachedKeys at least 1.")
            .Validate(o => o.SignatureWindow + o.SignatureMaxAhead <= INonceGrain.Window - TimeSpan.FromMinutes(1),
                $"{AuthOptions.SectionName}: SignatureWindow plus SignatureMaxAhead must not exceed {(INonceGrain.Window - TimeSpan.FromMinutes(1)).TotalMinutes} minutes: a nonce is remembered for {INonceGrain.Window.TotalMinutes}, a minute more for the servers' clocks to differ.")
            .Validate(o => o.KeyLookups.TokensPerSecond >= 1 && o.KeyLookups.Burst >= 1,
                $"{AuthOptions.SectionName}:KeyLookups: TokensPerSecond and Burst must be at least 1.")
            .ValidateOnStart();
        services.AddSingleton(new GeneratedAdminKey(generated));
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ApiKeyStore>();
        services.AddSingleton<NonceRecorder>();
        services.AddSingleton<AccountAccess>();
        services.AddSingleton<IAuthorizationHandler, AccountOwnerHandler>();
        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(Roles.AnyKeyPolicy, policy => policy.RequireAuthenticatedUser())
            .AddPolicy(Roles.AdminPolicy, policy => policy.RequireAuthenticatedUser().RequireRole(Roles.Admin))
            .AddPolicy(AccountOwnerRequirement.Policy, policy => policy.RequireAuthenticatedUser().AddRequirements(new AccountOwnerRequirement()));
        return builder;
    }

    /// <summary>
    /// Authentication, then the grains' view of the caller (a client key's id in Orleans' request
    /// context, so that accounts check ownership again), then authorization.
    /// </summary>
    public static WebApplication UseApiSecurity(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseAuthentication();
        app.Use((context, next) =>
        {
            if (context.User.KeyId() is { } keyId && !context.User.IsAdmin())
            {
                Caller.SetClient(keyId);
            }

            return next(context);
        });
        app.UseAuthorization();
        return app;
    }

    /// <summary>
    /// The OpenAPI document and Scalar: open to anyone when <see cref="AuthOptions.PublicDocs"/> says so
    /// (by default for the embedded ledger and in the Development environment), else admin keys only.
    /// </summary>
    public static WebApplication MapApiReference(this WebApplication app, LedgerMode mode)
    {
        ArgumentNullException.ThrowIfNull(app);
        var open = app.Services.GetRequiredService<IOptions<AuthOptions>>().Value.PublicDocs ?? (mode == LedgerMode.Embedded || app.Environment.IsDevelopment());
        IEndpointConventionBuilder[] docs = [app.MapOpenApi(), app.MapScalarApiReference()];
        if (!open)
        {
            foreach (var endpoint in docs)
            {
                endpoint.RequireAuthorization(Roles.AdminPolicy);
            }
        }

        return app;
    }

    /// <summary>Prints a generated admin key on one console line, <c>Admin API key: &lt;key&gt;</c>, once the API listens.</summary>
    public static void AnnounceAdminKey(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (app.Services.GetRequiredService<GeneratedAdminKey>().Key is { } key)
        {
            app.Lifetime.ApplicationStarted.Register(() => Console.Out.WriteLine(AdminKeyLinePrefix + key));
        }
    }

    /// <summary>The admin key the embedded ledger made up, or null when configured (or not embedded).</summary>
    private sealed record GeneratedAdminKey(string? Key);
}
