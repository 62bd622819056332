namespace Transactor.Grains;

internal static class PersistentStateExtensions
{
    /// <summary>
    /// Writes the state; if the write fails, memory holds a change that storage may not, so the
    /// grain's activation is dropped and the next call starts again from what storage holds.
    /// </summary>
    public static async Task WriteOrDeactivate<T>(this IPersistentState<T> state, Grain grain)
    {
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            grain.DeactivateOnIdle();
            throw;
        }
    }
}
