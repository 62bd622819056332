namespace Transactor.Api.Http;

/// <summary>A read-only view of a request body that throws once more than <c>maxBytes</c> have been read, so a streamed body stays bounded.</summary>
internal sealed class BoundedStream(Stream inner, long maxBytes) : Stream
{
    private long _read;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Count(await inner.ReadAsync(buffer, cancellationToken));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private int Count(int read)
    {
        _read += read;
        return _read > maxBytes ? throw new LimitExceededException() : read;
    }

    /// <summary>The body is longer than allowed.</summary>
    internal sealed class LimitExceededException : Exception
    {
        public LimitExceededException()
            : base("The body is longer than allowed.")
        {
        }

        public LimitExceededException(string message)
            : base(message)
        {
        }

        public LimitExceededException(string message, Exception innerException)
            : base(message, innerException)
        {
        }
    }
}
