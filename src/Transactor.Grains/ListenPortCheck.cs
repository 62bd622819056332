using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using Orleans.Configuration;

namespace Transactor.Grains;

/// <summary>
/// Refuses to start a silo whose silo or gateway port another process listens on. Orleans' listener
/// sets <c>SocketOptionName.ReuseAddress</c>, which .NET turns into <c>SO_REUSEPORT</c> on Linux: a
/// second silo on the same ports then binds without error, and the kernel shares incoming
/// connections between the two processes (seen with the embedded ledger and scripts/run-cluster.sh,
/// which both defaulted to 11111 and 30000). This check binds each port first without
/// <c>SO_REUSEPORT</c>, which fails while any other socket listens there.
/// </summary>
internal sealed class ListenPortCheck(IOptions<EndpointOptions> endpoints) : ILifecycleParticipant<ISiloLifecycle>
{
    // Linux's values; the option lets the probe bind over connections of an earlier run in TIME_WAIT
    // (as Orleans' own listener can), but not over a listening socket.
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(ListenPortCheck), ServiceLifecycleStage.First, _ =>
        {
            var options = endpoints.Value;
            Check("silo", options.SiloListeningEndpoint ?? new IPEndPoint(options.AdvertisedIPAddress, options.SiloPort), "SiloPort");
            if (options.GatewayListeningEndpoint is not null || options.GatewayPort != 0)
            {
                Check("gateway", options.GatewayListeningEndpoint ?? new IPEndPoint(options.AdvertisedIPAddress, options.GatewayPort), "GatewayPort");
            }

            return Task.CompletedTask;
        });

    /// <summary>Throws when another socket listens on <paramref name="endpoint"/>'s port.</summary>
    public static void Check(string role, IPEndPoint endpoint, string setting)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (endpoint.Port == 0)
        {
            return;
        }

        using var probe = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (OperatingSystem.IsLinux())
        {
            probe.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
        }

        try
        {
            probe.Bind(endpoint);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new OrleansConfigurationException(
                $"The {role} port {endpoint.Port} ({endpoint}) is already in use by another process; this silo does not start. "
                + $"Stop that process, or give this one another port (Orleans:Endpoints:{setting}, or Transactor:Embedded:{setting} for the API's embedded silo).", ex);
        }
    }
}
