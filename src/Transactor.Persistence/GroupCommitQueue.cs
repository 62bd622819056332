namespace Transactor.Persistence;

/// <summary>
/// Gathers operations while a flush is in flight and hands them over as the next flush: at most one
/// flush runs at a time, it starts as soon as one operation waits (no timer), and it takes at most
/// <c>maxBatchCount</c> operations and <c>maxBatchBytes</c> bytes (an operation larger than that goes
/// alone). At most <c>maxQueued</c> operations wait; one more is refused at once.
/// </summary>
internal sealed class GroupCommitQueue<TOperation>(
    Func<IReadOnlyList<TOperation>, Task> flush,
    Func<TOperation, Exception, bool> fail,
    Func<TOperation, long> bytes,
    int maxBatchCount,
    long maxBatchBytes,
    int maxQueued,
    string description)
{
    private readonly Lock _gate = new();
    private readonly Queue<TOperation> _waiting = new();
    private bool _flushing;

    /// <summary>Flushes sent so far.</summary>
    public long Flushes { get; private set; }

    /// <summary>Operations flushed so far.</summary>
    public long Operations { get; private set; }

    /// <summary>The largest flush so far, in operations.</summary>
    public int LargestFlush { get; private set; }

    public void Enqueue(TOperation operation)
    {
        bool start;
        lock (_gate)
        {
            if (_waiting.Count >= maxQueued)
            {
                throw new InvalidOperationException(
                    $"{description}: {maxQueued} operations already wait for the database (MaxQueuedOperations); this one is refused.");
            }

            _waiting.Enqueue(operation);
            start = !_flushing;
            _flushing = true;
        }

        if (start)
        {
            _ = Task.Run(FlushWhileWaiting);
        }
    }

    private async Task FlushWhileWaiting()
    {
        while (true)
        {
            var batch = new List<TOperation>();
            lock (_gate)
            {
                long batchBytes = 0;
                while (_waiting.Count > 0 && batch.Count < maxBatchCount)
                {
                    var size = bytes(_waiting.Peek());
                    if (batch.Count > 0 && batchBytes + size > maxBatchBytes)
                    {
                        break;
                    }

                    batch.Add(_waiting.Dequeue());
                    batchBytes += size;
                }

                if (batch.Count == 0)
                {
                    _flushing = false;
                    return;
                }

                Flushes++;
                Operations += batch.Count;
                LargestFlush = Math.Max(LargestFlush, batch.Count);
            }

            try
            {
                await flush(batch);
            }
            catch (Exception ex)
            {
                // The transaction did not commit (or its outcome is unknown): every write in it fails
                // with the database's exception, as a lone write would.
                foreach (var operation in batch)
                {
                    fail(operation, ex);
                }
            }
        }
    }
}
