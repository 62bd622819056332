using System.Diagnostics;
using OpenTelemetry;

namespace Transactor.ServiceDefaults;

/// <summary>
/// Leaves out the traces that no request started: Orleans' runtime work (membership pings, timers,
/// the dashboard's counter reports, reminders) and the database commands it issues on its own. A
/// span from these sources with no parent, local or remote, is marked not recorded when it starts;
/// its children are then not sampled either (the default sampler follows the parent), and the
/// exporter skips it. The same sources inside a request's trace are kept: a transfer's trace still
/// shows its grain calls and its PostgreSQL commands.
/// </summary>
public sealed class BackgroundSpanFilter : BaseProcessor<Activity>
{
    private static readonly HashSet<string> s_backgroundSources = new(StringComparer.Ordinal)
    {
        "Microsoft.Orleans.Runtime",
        "Microsoft.Orleans.Application",
        "Npgsql",
    };

    /// <summary>True for a span that starts a trace of its own from a background source.</summary>
    public static bool IsBackgroundRoot(Activity activity)
    {
        ArgumentNullException.ThrowIfNull(activity);
        return activity.Parent is null && activity.ParentSpanId == default && s_backgroundSources.Contains(activity.Source.Name);
    }

    public override void OnStart(Activity data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (IsBackgroundRoot(data))
        {
            data.ActivityTraceFlags &= ~ActivityTraceFlags.Recorded;
            data.IsAllDataRequested = false;
        }
    }
}
