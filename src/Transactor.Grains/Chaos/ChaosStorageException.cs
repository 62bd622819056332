using System.Data.Common;

// A namespace of its own: Orleans carries exceptions of the namespaces it is told of
// (ChaosFaults.AddChaosExceptionSerialization), as it does Npgsql's.
namespace Transactor.Grains.Chaos;

/// <summary>A storage read or write that chaos mode failed; a <see cref="DbException"/>, as the database's own failures are.</summary>
public sealed class ChaosStorageException : DbException
{
    public ChaosStorageException()
    {
    }

    public ChaosStorageException(string message)
        : base(message)
    {
    }

    public ChaosStorageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
