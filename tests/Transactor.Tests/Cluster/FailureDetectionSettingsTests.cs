using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Transactor.Api.Hosting;
using Transactor.Grains;
using Transactor.Tests.Api;

namespace Transactor.Tests.Cluster;

/// <summary>
/// What a Transactor silo host and the API's client are configured with (docs/reliability.md,
/// "Failure detection" and "Full restart"): the response timeout that bounds a call nothing will
/// answer, and the guard on the silo port, built as the hosts build them (not started).
/// </summary>
public sealed class FailureDetectionSettingsTests
{
    [Fact]
    public void A_silo_waits_30_s_for_an_answer_by_default_and_what_configuration_says_otherwise()
    {
        using var defaults = Silo();
        Assert.Equal(TimeSpan.FromSeconds(30), defaults.Services.GetRequiredService<IOptions<SiloMessagingOptions>>().Value.ResponseTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), defaults.Services.GetRequiredService<IOptions<SiloMessagingOptions>>().Value.PlacementTimeout);

        using var configured = Silo(("Transactor:FailureDetection:ResponseTimeout", "00:00:15"));
        Assert.Equal(TimeSpan.FromSeconds(15), configured.Services.GetRequiredService<IOptions<SiloMessagingOptions>>().Value.ResponseTimeout);
    }

    [Theory]
    [InlineData("00:00:00.5")]
    [InlineData("00:00:31")]
    public void A_response_timeout_under_a_second_or_above_that_of_the_calls_that_wait_on_purpose_is_refused_at_start(string timeout)
    {
        using var host = Silo(("Transactor:FailureDetection:ResponseTimeout", timeout));
        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<FailureDetectionOptions>>().Value);
        Assert.Contains("ResponseTimeout between 1 s and 30 s", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_silo_port_refuses_other_silos_before_the_silo_has_read_the_membership_table()
    {
        using var host = Silo();
        var options = (SiloConnectionOptions.ISiloConnectionBuilderOptions)host.Services.GetRequiredService<IOptions<SiloConnectionOptions>>().Value;
        var builder = new ConnectionBuilder(host.Services);
        options.ConfigureSiloInboundBuilder(builder);
        var reached = false;
        builder.Run(_ => { reached = true; return Task.CompletedTask; });

        await builder.Build()(new DefaultConnectionContext());

        Assert.False(reached);
        Assert.Equal(1, host.Services.GetRequiredService<SupersededSiloGuard>().Refused);
    }

    [Fact]
    public void The_api_client_waits_5_s_for_an_answer_by_default_and_what_configuration_says_otherwise_whatever_the_silos_wait()
    {
        using var defaults = ApiClient(("Transactor:FailureDetection:ResponseTimeout", "00:00:12"));
        Assert.Equal(TimeSpan.FromSeconds(5), defaults.Services.GetRequiredService<IOptions<ClientMessagingOptions>>().Value.ResponseTimeout);

        using var configured = ApiClient(("Transactor:FailureDetection:ClientResponseTimeout", "00:00:12"));
        Assert.Equal(TimeSpan.FromSeconds(12), configured.Services.GetRequiredService<IOptions<ClientMessagingOptions>>().Value.ResponseTimeout);
    }

    [Theory]
    [InlineData("00:00:00.5")]
    [InlineData("00:00:31")]
    public void The_api_refuses_to_start_with_a_client_response_timeout_out_of_range(string timeout)
    {
        var error = Assert.Throws<InvalidOperationException>(() => ApiClient(("Transactor:FailureDetection:ClientResponseTimeout", timeout)));
        Assert.Contains("ClientResponseTimeout must be between 1 s and 30 s", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_grain_method_the_api_calls_that_writes_to_storage_keeps_30_s_whatever_the_client_waits()
    {
        // The API's calls that change state: a timeout would answer 503 for a change that may stand.
        (Type Grain, string Method)[] writes =
        [
            (typeof(IAccountGrain), nameof(IAccountGrain.Open)),
            (typeof(IAccountGrain), nameof(IAccountGrain.OpenWithMetadata)),
            (typeof(IAccountGrain), nameof(IAccountGrain.SetLimits)),
            (typeof(IAccountGrain), nameof(IAccountGrain.Dispute)),
            (typeof(IAccountGrain), nameof(IAccountGrain.Resolve)),
            (typeof(IAccountGrain), nameof(IAccountGrain.Chargeback)),
            (typeof(IAccountDirectoryGrain), nameof(IAccountDirectoryGrain.Add)),
            (typeof(IApiKeyGrain), nameof(IApiKeyGrain.Create)),
            (typeof(IApiKeyGrain), nameof(IApiKeyGrain.Revoke)),
            (typeof(IApiKeyRegistryGrain), nameof(IApiKeyRegistryGrain.Add)),
            (typeof(IRunRegistryGrain), nameof(IRunRegistryGrain.Register)),
            (typeof(IRunRegistryGrain), nameof(IRunRegistryGrain.Report)),
            (typeof(IRunRegistryGrain), nameof(IRunRegistryGrain.Cancel)),
            (typeof(ITransferCoordinatorGrain), nameof(ITransferCoordinatorGrain.Execute)),
            (typeof(ITransferCoordinatorGrain), nameof(ITransferCoordinatorGrain.Submit)),
            (typeof(ITransferCoordinatorGrain), nameof(ITransferCoordinatorGrain.EndPending)),
            (typeof(ITransferCoordinatorGrain), nameof(ITransferCoordinatorGrain.EndPendingWithMetadata)),
        ];
        foreach (var (grain, name) in writes)
        {
            foreach (var method in grain.GetMethods().Where(m => m.Name == name))
            {
                var timeout = method.GetCustomAttributes(typeof(ResponseTimeoutAttribute), inherit: false).Cast<ResponseTimeoutAttribute>().SingleOrDefault();
                Assert.True(timeout?.Timeout == TimeSpan.FromSeconds(30), $"{grain.Name}.{name} must keep a 30-s response timeout");
            }
        }
    }

    private static WebApplication ApiClient(params (string Key, string Value)[] settings)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Orleans:Clustering:ProviderType"] = "AdoNet",
            ["Orleans:Clustering:ServiceKey"] = "ledger-db",
            ["ConnectionStrings:ledger-db"] = "Host=127.0.0.1;Port=1;Username=none;Database=none",
        });
        builder.Configuration.AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value)));
        builder.AddLedger();
        return builder.Build();
    }

    private static IHost Silo(params (string Key, string Value)[] settings)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value)));
        builder.UseOrleans(silo => silo.UseLocalhostClustering(ApiFixture.FreePort(), ApiFixture.FreePort()).AddTransactorSilo(builder.Configuration));
        return builder.Build();
    }
}
