using Transactor.Chaos;
using Transactor.Tests.EndToEnd;

namespace Transactor.Tests.Chaos;

public sealed class FaultScheduleTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(5);

    [Fact]
    public void The_seeded_run_in_the_test_suite_plans_every_kind_of_fault()
    {
        var plan = FaultSchedule.Plan(ChaosSuiteTests.Seed, TimeSpan.FromMinutes(ChaosSuiteTests.FaultMinutes), 3, Lease);

        Assert.Equal(FaultSchedule.ScheduledKinds.Order(), plan.Select(f => f.Kind).Distinct().Order());
    }

    [Fact]
    public void A_seed_gives_one_schedule_and_no_kind_of_fault_twice_in_a_row()
    {
        for (var seed = 1; seed <= 50; seed++)
        {
            var plan = FaultSchedule.Plan(seed, TimeSpan.FromMinutes(10), 3, Lease);

            Assert.Equal(plan, FaultSchedule.Plan(seed, TimeSpan.FromMinutes(10), 3, Lease));
            Assert.All(plan.Zip(plan.Skip(1)), pair => Assert.NotEqual(pair.First.Kind, pair.Second.Kind));
            Assert.All(plan.Where(f => f.Kind == FaultKind.PauseSilo), f => Assert.True(f.DurationMs > Lease.TotalMilliseconds, $"seed {seed}: a pause of {f.DurationMs} ms does not outlast the lease"));
        }
    }
}
