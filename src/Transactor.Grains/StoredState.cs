using Microsoft.Extensions.Logging;
using Orleans.Storage;

namespace Transactor.Grains;

/// <summary>
/// One grain's state in an <see cref="IGrainStorage"/>, read and written by the grain itself: the
/// same row, etag and encoding as Orleans' <c>[PersistentState]</c>, without its per-grain queue of
/// storage operations. That queue yields to the grain's scheduler before every write (an extra turn,
/// a task and a continuation), which a grain that writes on every call and never overlaps its own
/// writes does not need; see docs/benchmarks.md. Use it only from the grain's turns.
/// </summary>
internal sealed partial class StoredState<T>(IGrainStorage storage, string stateName, GrainId grainId, ILogger logger)
    where T : new()
{
    private readonly GrainState<T> _row = new(new T());

    public T State => _row.State!;

    /// <summary>Reads the row (a fresh state when there is none); a grain calls it once, when it activates.</summary>
    public async Task ReadAsync()
    {
        await storage.ReadStateAsync(stateName, grainId, _row);
        _row.State ??= new T();
    }

    /// <summary>
    /// Reads the row again, and takes it as the state when another writer has changed it since this
    /// grain last read or wrote it (its etag differs): Orleans' default directory can briefly run two
    /// activations of one grain, and each writes only through its own etag. Returns true when the
    /// state was replaced.
    /// </summary>
    public async Task<bool> ReloadIfChanged()
    {
        var stored = new GrainState<T>(new T());
        await storage.ReadStateAsync(stateName, grainId, stored);
        if (stored.ETag == _row.ETag)
        {
            return false;
        }

        _row.State = stored.State ?? new T();
        _row.ETag = stored.ETag;
        _row.RecordExists = stored.RecordExists;
        return true;
    }

    /// <summary>
    /// Writes the state; if the write fails, memory holds a change that storage may not, so the
    /// grain's activation is dropped and the next call starts again from what storage holds.
    /// </summary>
    public async Task WriteOrDeactivate(Grain grain)
    {
        try
        {
            await storage.WriteStateAsync(stateName, grainId, _row);
        }
        catch (Exception ex)
        {
            LogWriteFailed(logger, ex, stateName, grainId);
            grain.DeactivateOnIdle();
            throw;
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Writing state '{StateName}' of {GrainId} failed; the activation is dropped and reads its row again")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, string stateName, GrainId grainId);
}
