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
    public void The_api_client_waits_as_long_as_the_silos_are_configured_to()
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Orleans:Clustering:ProviderType"] = "AdoNet",
            ["Orleans:Clustering:ServiceKey"] = "ledger-db",
            ["ConnectionStrings:ledger-db"] = "Host=127.0.0.1;Port=1;Username=none;Database=none",
            ["Transactor:FailureDetection:ResponseTimeout"] = "00:00:12",
        });
        builder.AddLedger();
        using var app = builder.Build();

        Assert.Equal(TimeSpan.FromSeconds(12), app.Services.GetRequiredService<IOptions<ClientMessagingOptions>>().Value.ResponseTimeout);
    }

    private static IHost Silo(params (string Key, string Value)[] settings)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value)));
        builder.UseOrleans(silo => silo.UseLocalhostClustering(ApiFixture.FreePort(), ApiFixture.FreePort()).AddTransactorSilo(builder.Configuration));
        return builder.Build();
    }
}
