using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Transactor.Domain;

namespace Transactor.Tests.Domain;

/// <summary>The codecs silos use, for tests of the ledger model without a silo.</summary>
internal static class TestCodecs
{
    private static readonly IServiceProvider Services = new ServiceCollection().AddSerializer().BuildServiceProvider();

    public static HistoryCodec History { get; } = new(Services.GetRequiredService<Serializer<HistoryEntry>>());

    /// <summary>History entries framed as an account's row and a page row hold them.</summary>
    public static byte[] Frames(params HistoryEntry[] entries)
    {
        var buffer = Array.Empty<byte>();
        var length = 0;
        foreach (var entry in entries)
        {
            History.Append(entry, ref buffer, ref length);
        }

        return buffer[..length];
    }
}
