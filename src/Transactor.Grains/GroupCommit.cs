namespace Transactor.Grains;

/// <summary>
/// Shares one storage write among the changes a reentrant grain makes while a write is under way
/// (group commit). With a <paramref name="gatherDelay"/>, a write waits that long before it starts,
/// so that changes arriving meanwhile share it too: each waits a little longer, and the storage
/// takes fewer writes. Not thread-safe: use it only from its grain's turns.
/// </summary>
internal sealed class GroupCommit(Func<Task> write, TimeSpan gatherDelay = default, TimeProvider? time = null)
{
    private long _changes;
    private long _persisted;
    private Task? _writing;

    /// <summary>The number of the latest change.</summary>
    public long Latest => _changes;

    /// <summary>True while some change is not yet covered by a completed write.</summary>
    public bool Dirty => _persisted < _changes;

    /// <summary>Notes a change to the state; returns its number.</summary>
    public long Changed() => ++_changes;

    /// <summary>Returns once a write that includes change number <paramref name="change"/> has completed.</summary>
    public async Task Persisted(long change)
    {
        while (_persisted < change)
        {
            if (_writing is { } pending)
            {
                await pending;
                continue;
            }

            var next = Write();
            if (!next.IsCompleted)
            {
                // Later callers join this write or queue behind it; Write clears it when done.
                _writing = next;
            }

            await next;
        }
    }

    private async Task Write()
    {
        if (gatherDelay > TimeSpan.Zero)
        {
            await Task.Delay(gatherDelay, time ?? TimeProvider.System);
        }
        else
        {
            // Let the turns already queued for the grain make their changes first, so they share this write.
            await Task.Yield();
        }

        var upTo = _changes;
        try
        {
            await write();
            _persisted = Math.Max(_persisted, upTo);
        }
        finally
        {
            _writing = null;
        }
    }
}
