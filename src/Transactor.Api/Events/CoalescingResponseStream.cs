using System.Buffers;
using System.IO.Pipelines;

namespace Transactor.Api.Events;

/// <summary>
/// The response body of an event stream: writes go into the response's pipe without a flush each
/// (Kestrel's own body stream flushes every write, so one socket send per event per subscriber), and
/// the stream flushes when its producer has nothing more to send at once (<see cref="SendAsync"/>)
/// or when <see cref="FlushAt"/> bytes are waiting. A flush waits for a slow client, as a write would:
/// the subscriber's bounded buffer, not this stream, absorbs what the client cannot take.
/// </summary>
internal sealed class CoalescingResponseStream(PipeWriter writer) : Stream
{
    /// <summary>Bytes written without a flush before the next write flushes.</summary>
    public const int FlushAt = 32 * 1024;

    private long _unflushed;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        writer.Write(buffer.Span);
        _unflushed += buffer.Length;
        if (_unflushed >= FlushAt)
        {
            await SendAsync(cancellationToken);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>
    /// Does not flush by itself unless <see cref="FlushAt"/> bytes wait: whoever formats the events
    /// may flush after each one, which is exactly the cost this stream saves. The producer flushes
    /// with <see cref="SendAsync"/> when it has nothing more at hand; the server flushes at the end.
    /// </summary>
    public override Task FlushAsync(CancellationToken cancellationToken) =>
        _unflushed >= FlushAt ? SendAsync(cancellationToken) : Task.CompletedTask;

    /// <summary>Sends what was written so far (a flush of the response's pipe; waits for a slow client).</summary>
    public async Task SendAsync(CancellationToken cancellationToken)
    {
        if (_unflushed == 0)
        {
            return;
        }

        _unflushed = 0;
        await writer.FlushAsync(cancellationToken);
    }

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("The event stream is written asynchronously.");

    public override void Flush() => throw new NotSupportedException("The event stream is flushed asynchronously.");

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
