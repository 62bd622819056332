using System.Collections.Concurrent;

namespace Transactor.Tests.Cluster;

/// <summary>
/// Holds chosen grain calls of a movement on their way (before they are sent, or their answer on
/// the way back) until the test lets them go: a message that arrives late, as after a GC pause, an
/// overloaded silo or a slow network. Or loses a call's answer: the call ran, and its caller hears
/// a timeout. Each hold catches the first call of its method for its transfer id that is made
/// after the hold was set.
/// </summary>
internal sealed class HeldCalls : IOutgoingGrainCallFilter
{
    private static readonly ConcurrentDictionary<(string Method, string TransferId), ConcurrentQueue<HeldCall>> Holds = new();

    /// <summary>Holds the next <paramref name="method"/> call of <paramref name="transferId"/> before it is sent.</summary>
    public static HeldCall Before(string method, string transferId) => Add(method, transferId, new HeldCall(AfterAnswer: false));

    /// <summary>Holds the answer of the next <paramref name="method"/> call of <paramref name="transferId"/> before its caller gets it.</summary>
    public static HeldCall AfterAnswer(string method, string transferId) => Add(method, transferId, new HeldCall(AfterAnswer: true));

    /// <summary>Lets the next <paramref name="method"/> call of <paramref name="transferId"/> run, and gives its caller a timeout instead of its answer.</summary>
    public static HeldCall LoseAnswer(string method, string transferId)
    {
        var held = Add(method, transferId, new HeldCall(AfterAnswer: true) { Lost = true });
        held.Release();
        return held;
    }

    public async Task Invoke(IOutgoingGrainCallContext context)
    {
        var transferId = context.Request.GetArgumentCount() > 0 ? TransferIdOf(context.Request.GetArgument(0)) : null;
        HeldCall? held = null;
        if (transferId is not null && Holds.TryGetValue((context.MethodName, transferId), out var queue))
        {
            queue.TryDequeue(out held);
        }

        if (held is { AfterAnswer: false })
        {
            await held.Hold();
        }

        await context.Invoke();
        if (held is { AfterAnswer: true })
        {
            await held.Hold();
            if (held.Lost)
            {
                throw new TimeoutException($"Injected: the answer of {context.MethodName} for '{transferId}' was lost.");
            }
        }
    }

    private static HeldCall Add(string method, string transferId, HeldCall held)
    {
        Holds.GetOrAdd((method, transferId), _ => new ConcurrentQueue<HeldCall>()).Enqueue(held);
        return held;
    }

    private static string? TransferIdOf(object? argument) => argument switch
    {
        string id => id,
        TransferRequest request => request.TransferId,
        PrepareRequest prepare => prepare.TransferId,
        _ => null,
    };
}

/// <summary>One held call: <see cref="Reached"/> when it is held, and on its way again after <see cref="Release"/>.</summary>
internal sealed record HeldCall(bool AfterAnswer)
{
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>True when the call runs and its caller hears a timeout instead of its answer.</summary>
    public bool Lost { get; init; }

    public void Release() => _released.TrySetResult();

    public Task Hold()
    {
        Reached.TrySetResult();
        return _released.Task;
    }
}
