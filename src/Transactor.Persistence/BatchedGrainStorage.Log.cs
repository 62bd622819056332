using Microsoft.Extensions.Logging;

namespace Transactor.Persistence;

public sealed partial class BatchedGrainStorage
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Grain storage {Name} (batched) open for ServiceId {ServiceId}: at most {MaxBatchWrites} writes and {MaxBatchBytes} bytes per commit")]
    private static partial void LogOpened(ILogger logger, string name, string serviceId, int maxBatchWrites, int maxBatchBytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Grain storage {Name} could not write {StateName} of {GrainKey}")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, string name, string stateName, string grainKey);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Grain storage {Name} could not read {StateName} of {GrainKey}")]
    private static partial void LogReadFailed(ILogger logger, Exception exception, string name, string stateName, string grainKey);
}
