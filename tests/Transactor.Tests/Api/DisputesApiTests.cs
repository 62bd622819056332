using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Transactor.Tests.Api;

[Collection(ApiTestGroup.Name)]
public sealed class DisputesApiTests(ApiFixture api)
{
    private readonly HttpClient _client = api.CreateClient();

    [Fact]
    public async Task Dispute_holds_a_deposit_and_resolve_releases_it()
    {
        var (id, deposit) = await AccountWithDeposit(700);

        using var disputed = await Step(id, "disputes", deposit);
        var held = await disputed.Body();
        using var again = await Step(id, "disputes", deposit);
        using var resolved = await Step(id, "resolves", deposit);
        using var resolvedTwice = await Step(id, "resolves", deposit);

        Assert.Equal(HttpStatusCode.OK, disputed.StatusCode);
        Assert.Equal((0L, 700L, 700L), (held.GetProperty("available").GetInt64(), held.GetProperty("held").GetInt64(), held.GetProperty("total").GetInt64()));
        await again.AssertProblem(HttpStatusCode.UnprocessableEntity, "already_disputed");
        Assert.Equal(HttpStatusCode.OK, resolved.StatusCode);
        await resolvedTwice.AssertProblem(HttpStatusCode.UnprocessableEntity, "not_disputed");
        var account = await _client.GetFromJsonAsync<JsonElement>($"/accounts/{id}");
        Assert.Equal((700L, 0L), (account.GetProperty("available").GetInt64(), account.GetProperty("held").GetInt64()));
    }

    [Fact]
    public async Task Chargeback_removes_the_deposit_and_locks_the_account()
    {
        var (id, deposit) = await AccountWithDeposit(500);
        var other = await _client.OpenAccount(1_000);

        using var disputed = await Step(id, "disputes", deposit);
        using var charged = await Step(id, "chargebacks", deposit);
        using var transferIn = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{other}}","to":"{{id}}","amount":10,"currency":"USD"}""", $"t-{Guid.NewGuid():N}"));

        var body = await charged.Body();
        Assert.Equal(HttpStatusCode.OK, charged.StatusCode);
        Assert.Equal((0L, 0L, true), (body.GetProperty("total").GetInt64(), body.GetProperty("held").GetInt64(), body.GetProperty("locked").GetBoolean()));
        await transferIn.AssertProblem(HttpStatusCode.UnprocessableEntity, "account_locked");
        Assert.Equal(1_000, await _client.Available(other));
    }

    [Fact]
    public async Task Only_deposits_of_the_account_can_be_disputed_and_never_beyond_available()
    {
        var (id, deposit) = await AccountWithDeposit(400);
        var other = await _client.OpenAccount();
        var transferKey = $"t-{Guid.NewGuid():N}";
        using var spend = await _client.SendAsync(Http.Post("/transfers", $$"""{"from":"{{id}}","to":"{{other}}","amount":300,"currency":"USD"}""", transferKey));

        using var unknown = await Step(id, "disputes", "no-such-deposit");
        using var notADeposit = await Step(id, "disputes", transferKey);
        using var elsewhere = await Step(other, "disputes", deposit);
        using var tooMuch = await Step(id, "disputes", deposit);

        await unknown.AssertProblem(HttpStatusCode.NotFound, "deposit_not_found");
        await notADeposit.AssertProblem(HttpStatusCode.NotFound, "deposit_not_found");
        await elsewhere.AssertProblem(HttpStatusCode.NotFound, "deposit_not_found");
        await tooMuch.AssertProblem(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        Assert.Equal((100L, 300L), (await _client.Available(id), await _client.Available(other)));
    }

    private async Task<(string Id, string Deposit)> AccountWithDeposit(long amountMinor)
    {
        var id = await _client.OpenAccount();
        var deposit = $"dep-{Guid.NewGuid():N}";
        using var response = await _client.SendAsync(Http.Post($"/accounts/{id}/deposits", $$"""{"amount":{{amountMinor}}}""", deposit));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (id, deposit);
    }

    private Task<HttpResponseMessage> Step(string id, string step, string deposit) =>
        _client.SendAsync(Http.Post($"/accounts/{id}/{step}", $$"""{"deposit":"{{deposit}}"}"""));
}
