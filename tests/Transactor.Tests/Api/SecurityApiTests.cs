using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Transactor.Api.Security;

namespace Transactor.Tests.Api;

/// <summary>API keys, owners, signed requests and token buckets, over real HTTP against the embedded ledger (docs/security.md).</summary>
[Collection(ApiTestGroup.Name)]
public sealed class SecurityApiTests(ApiFixture api)
{
    private static readonly string[] TwoUnknown = ["api_key_unknown", "api_key_unknown"];
    private static readonly int[] BatchStatuses = [201, 403, 403, 201];

    private readonly HttpClient _admin = api.CreateClient();

    [Fact]
    public void The_signature_test_vector_in_the_docs_holds()
    {
        // docs/security.md, "Test vector"; computed there independently (Python's hmac and hashlib).
        const string secret = "q8Lr3cVx0mN2pZ7tYbW4eK9sHj6uA1dGfE5iO0lQwRk";
        var signingKey = ApiKeySecrets.SigningKey(secret);
        Assert.Equal("be2d84d3533e0b7790ccad2b300d803c52f608b9f2f8fda531fe100a80fa7c77", Convert.ToHexStringLower(signingKey));
        var body = SHA256.HashData("""{"from":"alice","to":"bob","amount":2500,"currency":"USD"}"""u8);
        var canonical = RequestSignatures.CanonicalString("POST", "/transfers", "", "1764921600", "n-0123456789abcdef", body);
        Assert.Equal("TRANSACTOR-HMAC-SHA256\nPOST\n/transfers\n\n1764921600\nn-0123456789abcdef\nec6d918f6699e91362936cf15833d63e66865d59de97e62dc819febdab29bce8", canonical);
        Assert.Equal("9Tuxex/pPFSmjLPnY8xNwwOQ+iFNVcu5U+2vL2RRp5o=", RequestSignatures.Sign(signingKey, canonical));
    }

    [Fact]
    public async Task Every_endpoint_without_a_key_or_with_an_unknown_one_answers_401_and_moves_nothing()
    {
        var (from, to) = (await _admin.OpenAccount(5_000), await _admin.OpenAccount(1_000));
        var deposit = await DepositAs(_admin, from, 100);
        var before = await Balances(from, to);
        using var anonymous = api.Server.CreateClient();
        var unknown = ApiKeySecrets.Format("k0123456789abcdef", ApiKeySecrets.NewSecret());
        foreach (var (authorization, code) in new[] { (null, "api_key_missing"), ($"Bearer {unknown}", "api_key_unknown"), ("Bearer", "api_key_malformed"), ($"Bearer {ApiFixture.AdminKey}x", "api_key_unknown") })
        {
            foreach (var request in EveryEndpoint(from, to, deposit))
            {
                using (request)
                {
                    if (authorization is not null)
                    {
                        request.Headers.TryAddWithoutValidation("Authorization", authorization);
                    }

                    var description = $"{request.Method} {request.RequestUri}";
                    using var response = await anonymous.SendAsync(request);
                    Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{description} with '{authorization}': {(int)response.StatusCode}");
                    await response.AssertProblem(HttpStatusCode.Unauthorized, code);
                    Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
                }
            }
        }

        Assert.Equal(before, await Balances(from, to));
        // Health and the API reference need no key.
        using var health = await anonymous.GetAsync("/alive");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Another_owners_client_key_gets_403_everywhere_and_moves_nothing()
    {
        using var alice = await ClientWithNewKey("alice");
        using var mallory = await ClientWithNewKey("mallory");
        var account = await alice.OpenAccount(5_000);
        var malloryAccount = await mallory.OpenAccount();
        var deposit = await DepositAs(alice, account, 700);
        var before = await Balances(account, malloryAccount);

        var missing = $"acct-{Guid.NewGuid():N}";
        foreach (var target in new[] { account, missing })
        {
            HttpRequestMessage[] debits =
            [
                Http.Post($"/accounts/{target}/withdrawals", """{"amount":10}""", Key()),
                Http.Post("/transfers", $$"""{"from":"{{target}}","to":"{{malloryAccount}}","amount":10,"currency":"USD"}""", Key()),
                Http.Post("/transfer", $$"""{"from":"{{target}}","to":"{{malloryAccount}}","amount":10}""", Key()),
                Http.Post($"/accounts/{target}/disputes", $$"""{"deposit":"{{deposit}}"}"""),
                Http.Post($"/accounts/{target}/resolves", $$"""{"deposit":"{{deposit}}"}"""),
                Http.Post($"/accounts/{target}/chargebacks", $$"""{"deposit":"{{deposit}}"}"""),
                new(HttpMethod.Get, $"/accounts/{target}"),
            ];
            foreach (var request in debits)
            {
                using (request)
                {
                    using var response = await mallory.SendAsync(request);
                    var body = await response.AssertProblem(HttpStatusCode.Forbidden, "not_owner");
                    // The same answer whether the account is someone else's or does not exist.
                    Assert.DoesNotContain(target, body.GetRawText(), StringComparison.Ordinal);
                }
            }
        }

        using (var read = await mallory.GetAsync($"/transfers/{deposit}"))
        {
            await read.AssertProblem(HttpStatusCode.Forbidden, "not_owner");
        }

        using (var read = await mallory.GetAsync("/transfers/no-such-transfer"))
        {
            await read.AssertProblem(HttpStatusCode.Forbidden, "not_owner");
        }

        using (var open = await mallory.SendAsync(Http.Post("/accounts", $$"""{"id":"acct-{{Guid.NewGuid():N}}","currency":"USD","owner":"someone-else"}""")))
        {
            await open.AssertProblem(HttpStatusCode.Forbidden, "owner_not_allowed");
        }

        using (var keys = await mallory.GetAsync("/keys"))
        {
            await keys.AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        }

        Assert.Equal(before, await Balances(account, malloryAccount));
        var availableBefore = await _admin.Available(account);

        // Crediting is open to any key: mallory may pay alice, and does not see alice's balances.
        using var pay = await mallory.SendAsync(Http.Post("/transfers", $$"""{"from":"{{malloryAccount}}","to":"{{account}}","amount":0,"currency":"USD"}""", Key()));
        await pay.AssertProblem(HttpStatusCode.BadRequest, "invalid_amount");
        using var gift = await mallory.SendAsync(Http.Post($"/accounts/{account}/deposits", """{"amount":5}""", Key()));
        Assert.Equal(HttpStatusCode.Created, gift.StatusCode);
        var gifted = await gift.Body();
        Assert.Equal(JsonValueKind.Null, gifted.GetProperty("to_account").ValueKind);
        Assert.Equal(availableBefore + 5, await _admin.Available(account));

        // A client lists only its own accounts, without the total.
        var page = await (await alice.GetAsync("/accounts?limit=100")).Body();
        Assert.All(page.GetProperty("items").EnumerateArray(), item => Assert.Equal(account, item.GetProperty("id").GetString()));
        Assert.Equal(JsonValueKind.Null, page.GetProperty("total").ValueKind);
    }

    [Fact]
    public async Task Accounts_refuse_a_client_callers_debit_themselves_when_the_API_check_is_bypassed()
    {
        var account = await _admin.OpenAccount(1_000);
        var other = await _admin.OpenAccount();
        var deposit = await DepositAs(_admin, account, 10);
        var grains = api.Services.GetRequiredService<IClusterClient>();
        var before = await Balances(account, other);

        // As the API marks a client key's calls; the account is owned by the admin key, not this one.
        Caller.SetClient("k0000000000000001");
        try
        {
            var result = await grains.GetCoordinator().Execute(new TransferRequest($"bypass-{Guid.NewGuid():N}", account, other, 100, "USD"));
            Assert.Equal((TransferStatus.Rejected, RejectionReason.NotOwner), (result.Status, result.Reason));
            // A batch's call: the mark reaches every item's accounts, all of them run at once.
            var items = await grains.GetCoordinator().ExecuteMany([.. Enumerable.Range(0, BatchItemOutcome.MaxItems).Select(i => new TransferRequest($"bypass-{i}-{Guid.NewGuid():N}", account, other, 1, "USD"))]);
            Assert.All(items, item => Assert.Equal((TransferStatus.Rejected, RejectionReason.NotOwner), (item.Result!.Status, item.Result.Reason)));
            var dispute = await grains.GetAccount(account).Dispute(deposit);
            Assert.Equal(Transactor.Domain.BatchOutcome.NotOwner, dispute.Outcome);
        }
        finally
        {
            Orleans.Runtime.RequestContext.Clear();
        }

        Assert.Equal(before, await Balances(account, other));
    }

    [Fact]
    public async Task A_revoked_key_is_refused_at_once_by_the_instance_that_revoked_it_and_by_another_within_the_cache_time()
    {
        await using var second = api.SecondInstance();
        var (key, id) = await CreateKey("short-lived", "client");
        using var here = Authorized(api.Server.CreateClient(), key);
        using var there = Authorized(second.Server.CreateClient(), key);
        var account = await here.OpenAccount(100);
        using (var read = await there.GetAsync($"/accounts/{account}"))
        {
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        }

        using (var revoke = await _admin.DeleteAsync($"/keys/{id}"))
        {
            Assert.Equal("revoked", (await revoke.Body()).GetProperty("state").GetString());
        }

        using (var refused = await here.GetAsync($"/accounts/{account}"))
        {
            await refused.AssertProblem(HttpStatusCode.Unauthorized, "api_key_revoked");
        }

        // The other instance trusts what it read for Transactor:Auth:KeyCacheTime (5 s by default).
        var clock = System.Diagnostics.Stopwatch.StartNew();
        HttpStatusCode status;
        do
        {
            using var attempt = await there.GetAsync($"/accounts/{account}");
            status = attempt.StatusCode;
            if (status != HttpStatusCode.Unauthorized)
            {
                await Task.Delay(100);
            }
        }
        while (status != HttpStatusCode.Unauthorized && clock.Elapsed < TimeSpan.FromSeconds(8));

        Assert.True(status == HttpStatusCode.Unauthorized, $"the second instance still accepted the revoked key after {clock.Elapsed}");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(6.5), $"revoke took {clock.Elapsed} to reach the second instance");
        using var withdraw = await there.SendAsync(Http.Post($"/accounts/{account}/withdrawals", """{"amount":10}""", Key()));
        await withdraw.AssertProblem(HttpStatusCode.Unauthorized, "api_key_revoked");
        Assert.Equal(100, await _admin.Available(account));
        var listed = await (await _admin.GetAsync("/keys")).Body();
        Assert.Contains(listed.EnumerateArray(), k => k.GetProperty("id").GetString() == id && k.GetProperty("state").GetString() == "revoked");
        Assert.DoesNotContain(key.Split('.')[2], listed.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Signed_requests_refuse_a_changed_body_or_path_a_stale_timestamp_and_a_replay_to_a_second_instance()
    {
        await using var second = api.SecondInstance();
        var (key, _) = await CreateKey("signer", "client", requireSignature: true);
        var signingKey = ApiKeySecrets.SigningKey(key.Split('.')[2]);
        using var client = Authorized(api.Server.CreateClient(), key);
        using var other = Authorized(second.Server.CreateClient(), key);
        var now = DateTimeOffset.UtcNow;

        // Opening and depositing, signed.
        var account = $"acct-{Guid.NewGuid():N}";
        using (var open = await client.SendAsync(Signed(signingKey, HttpMethod.Post, "/accounts", $$"""{"id":"{{account}}","currency":"USD"}""", now)))
        {
            Assert.Equal(HttpStatusCode.Created, open.StatusCode);
        }

        var depositBody = """{"amount":1000}""";
        using (var deposit = await client.SendAsync(Signed(signingKey, HttpMethod.Post, $"/accounts/{account}/deposits", depositBody, now, Key())))
        {
            Assert.Equal(HttpStatusCode.Created, deposit.StatusCode);
        }

        var withdrawPath = $"/accounts/{account}/withdrawals";
        using (var unsigned = await client.SendAsync(Http.Post(withdrawPath, """{"amount":1}""", Key())))
        {
            await unsigned.AssertProblem(HttpStatusCode.Unauthorized, "signature_required");
        }

        // One byte of the body changed after signing.
        var tampered = Signed(signingKey, HttpMethod.Post, withdrawPath, """{"amount":1}""", now, Key());
        tampered.Content = Http.Json("""{"amount":9}""");
        await AssertRefused(client, tampered, "signature_invalid");

        // Signed for one path, sent to another.
        var moved = Signed(signingKey, HttpMethod.Post, withdrawPath, """{"amount":1}""", now, Key());
        moved.RequestUri = new Uri($"/accounts/{account}/deposits", UriKind.Relative);
        await AssertRefused(client, moved, "signature_invalid");

        // Six minutes old, or six ahead: outside the ±5 minute window.
        await AssertRefused(client, Signed(signingKey, HttpMethod.Post, withdrawPath, """{"amount":1}""", now.AddMinutes(-6), Key()), "signature_stale");
        await AssertRefused(client, Signed(signingKey, HttpMethod.Post, withdrawPath, """{"amount":1}""", now.AddMinutes(6), Key()), "signature_stale");

        // A good request goes through once; its exact copy to the second instance is a replay.
        var idempotency = Key();
        var nonce = Nonce();
        using (var first = await client.SendAsync(Signed(signingKey, HttpMethod.Post, withdrawPath, """{"amount":100}""", now, idempotency, nonce)))
        {
            Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        }

        await AssertRefused(other, Signed(signingKey, HttpMethod.Post, withdrawPath, """{"amount":100}""", now, idempotency, nonce), "signature_replayed");
        await AssertRefused(client, Signed(signingKey, HttpMethod.Post, withdrawPath, """{"amount":100}""", now, idempotency, nonce), "signature_replayed");

        // A signed read, with a query string, on the second instance.
        using (var list = await other.SendAsync(Signed(signingKey, HttpMethod.Get, "/accounts?limit=5", null, now)))
        {
            Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        }

        Assert.Equal(900, await _admin.Available(account));
    }

    [Fact]
    public async Task A_flooding_client_gets_429_with_Retry_After_while_another_key_still_succeeds()
    {
        var (floodKey, _) = await CreateKey("flooder", "client", ratePerSecond: 1, burst: 3);
        var (calmKey, _) = await CreateKey("calm", "client");
        using var flood = Authorized(api.Server.CreateClient(), floodKey);
        using var calm = Authorized(api.Server.CreateClient(), calmKey);
        var account = await calm.OpenAccount();

        using (var first = await flood.GetAsync("/accounts?limit=1"))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal("3", first.Headers.GetValues("RateLimit-Limit").Single());
            Assert.Equal("2", first.Headers.GetValues("RateLimit-Remaining").Single());
        }

        HttpResponseMessage? limited = null;
        for (var i = 0; i < 10 && limited is null; i++)
        {
            var response = await flood.GetAsync("/accounts?limit=1");
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited = response;
            }
            else
            {
                response.Dispose();
            }
        }

        Assert.NotNull(limited);
        using (limited)
        {
            await limited.AssertProblem(HttpStatusCode.TooManyRequests, "rate_limited");
            // One token a second: the next one is at most a second away.
            Assert.Equal(TimeSpan.FromSeconds(1), limited.Headers.RetryAfter?.Delta);
        }

        for (var i = 0; i < 5; i++)
        {
            using var ok = await calm.GetAsync($"/accounts/{account}");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
    }

    [Fact]
    public async Task The_global_bucket_caps_the_sum_of_all_keys()
    {
        await using var capped = api.WithSettings(("Transactor:Auth:Global:TokensPerSecond", "1"), ("Transactor:Auth:Global:Burst", "4"));
        using var admin = capped.CreateClient();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++)
        {
            using var response = await admin.GetAsync("/accounts?limit=1");
            statuses.Add(response.StatusCode);
        }

        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.True(statuses.Count(s => s == HttpStatusCode.OK) <= 5, string.Join(", ", statuses));
    }

    [Fact]
    public async Task A_nonce_shard_that_restarts_refuses_a_replay_of_any_request_it_had_accepted()
    {
        // A ledger of its own: restarted shards refuse some fresh requests for INonceGrain.RestartGrace.
        await using var ledger = api.WithSettings(("Transactor:Auth:SignatureMaxAhead", "00:05:00"));
        using var admin = ledger.CreateClient();
        var (key, keyId) = await CreateKey(admin, "restarting signer", "client", requireSignature: true);
        var signingKey = ApiKeySecrets.SigningKey(key.Split('.')[2]);
        using var client = Authorized(ledger.Server.CreateClient(), key);
        var account = $"acct-{Guid.NewGuid():N}";
        using (var open = await client.SendAsync(Signed(signingKey, HttpMethod.Post, "/accounts", $$"""{"id":"{{account}}","currency":"USD"}""", DateTimeOffset.UtcNow)))
        {
            Assert.Equal(HttpStatusCode.Created, open.StatusCode);
        }

        await DepositAs(admin, account, 1_000);
        var path = $"/accounts/{account}/withdrawals";
        var grains = ledger.Services.GetRequiredService<IClusterClient>();
        INonceGrain ShardOf(string nonce) => grains.GetGrain<INonceGrain>((long)(StableHash.Fnv1a(keyId + ":" + nonce) % INonceGrain.Shards));

        // Signed now (the shard keeps its nonce in memory), and signed 4 minutes ahead (inside the
        // ±5 minute window; the shard stores its nonce before accepting it).
        var now = DateTimeOffset.UtcNow;
        var (nonce, ahead) = (Nonce(), Nonce());
        foreach (var (at, used) in new[] { (now, nonce), (now.AddMinutes(4), ahead) })
        {
            var idempotency = Key();
            using (var first = await client.SendAsync(Signed(signingKey, HttpMethod.Post, path, """{"amount":100}""", at, idempotency, used)))
            {
                Assert.Equal(HttpStatusCode.Created, first.StatusCode);
            }

            await AssertRefused(client, Signed(signingKey, HttpMethod.Post, path, """{"amount":100}""", at, idempotency, used), "signature_replayed");
        }

        Assert.Equal(800, await admin.Available(account));

        // The shards that hold the nonces lose their memory, as when their silo dies.
        foreach (var used in new[] { nonce, ahead })
        {
            await ShardOf(used).AsReference<Orleans.Core.Internal.IGrainManagementExtension>().DeactivateOnIdle();
        }

        // The replays, with new idempotency keys so that only the nonce check stands between them and
        // more withdrawals: the one in memory cannot be judged (503), the stored one is known (401).
        using (var replay = await client.SendAsync(Signed(signingKey, HttpMethod.Post, path, """{"amount":100}""", now, Key(), nonce)))
        {
            await replay.AssertProblem(HttpStatusCode.ServiceUnavailable, "replay_check_restarting");
            Assert.Equal(INonceGrain.RestartGrace, replay.Headers.RetryAfter?.Delta);
        }

        await AssertRefused(client, Signed(signingKey, HttpMethod.Post, path, """{"amount":100}""", now.AddMinutes(4), Key(), ahead), "signature_replayed");
        Assert.Equal(800, await admin.Available(account));

        // A new request in the restarted shard: refused when signed now, as the shard cannot tell it
        // from one its last activation saw; accepted at once when signed past the grace (and stored).
        var restarted = ShardOf(nonce).GetPrimaryKeyLong();
        string Fresh()
        {
            while (true)
            {
                var candidate = Nonce();
                if (ShardOf(candidate).GetPrimaryKeyLong() == restarted)
                {
                    return candidate;
                }
            }
        }

        using (var early = await client.SendAsync(Signed(signingKey, HttpMethod.Post, path, """{"amount":100}""", DateTimeOffset.UtcNow, Key(), Fresh())))
        {
            await early.AssertProblem(HttpStatusCode.ServiceUnavailable, "replay_check_restarting");
        }

        var pastGrace = DateTimeOffset.UtcNow + INonceGrain.RestartGrace + TimeSpan.FromSeconds(5);
        using (var fresh = await client.SendAsync(Signed(signingKey, HttpMethod.Post, path, """{"amount":100}""", pastGrace, Key(), Fresh())))
        {
            Assert.Equal(HttpStatusCode.Created, fresh.StatusCode);
        }

        Assert.Equal(700, await admin.Available(account));
    }

    [Fact]
    public async Task A_nonce_shard_stores_a_bounded_number_of_nonces_signed_ahead_per_key_and_reads_them_back_after_a_restart()
    {
        await using var ledger = api.WithSettings(("Transactor:Auth:SignatureMaxAhead", "00:05:00"));
        var shard = ledger.Services.GetRequiredService<IClusterClient>().GetGrain<INonceGrain>(3);
        var ahead = DateTimeOffset.UtcNow.AddMinutes(2);
        var keys = Enumerable.Range(0, INonceGrain.MaxStoredPerShard / INonceGrain.MaxStoredPerKey).Select(k => $"k{k}").ToArray();
        var stored = keys.SelectMany(k => Enumerable.Range(0, INonceGrain.MaxStoredPerKey).Select(i => $"{k}:ahead-{i}")).ToArray();

        // The first key's quota, then one more of it: refused, while another key still stores its own.
        Assert.All(await shard.TryUse([.. stored[..INonceGrain.MaxStoredPerKey].Select(n => NonceUse.Of(n, ahead))]), o => Assert.Equal(NonceOutcome.Fresh, o));
        Assert.Equal([NonceOutcome.AheadFull, NonceOutcome.Fresh], await shard.TryUse([NonceUse.Of("k0:one-more", ahead), NonceUse.Of(stored[INonceGrain.MaxStoredPerKey], ahead)]));
        foreach (var chunk in stored[(INonceGrain.MaxStoredPerKey + 1)..].Chunk(INonceGrain.MaxPerCall))
        {
            Assert.All(await shard.TryUse([.. chunk.Select(n => NonceUse.Of(n, ahead))]), o => Assert.Equal(NonceOutcome.Fresh, o));
        }

        // Full of stored nonces: one more signed ahead by a new key is refused; one signed now needs no storage.
        var outcomes = await shard.TryUse([NonceUse.Of("other:one-more", ahead), NonceUse.Of("other:now", DateTimeOffset.UtcNow), NonceUse.Of(stored[0], ahead)]);
        Assert.Equal([NonceOutcome.AheadFull, NonceOutcome.Fresh, NonceOutcome.Replayed], outcomes);

        await shard.AsReference<Orleans.Core.Internal.IGrainManagementExtension>().DeactivateOnIdle();

        // Every stored nonce is known to the next activation; the refused ones were never remembered.
        foreach (var chunk in stored.Chunk(INonceGrain.MaxPerCall))
        {
            Assert.All(await shard.TryUse([.. chunk.Select(n => NonceUse.Of(n, ahead))]), o => Assert.Equal(NonceOutcome.Replayed, o));
        }

        Assert.Equal([NonceOutcome.AheadFull, NonceOutcome.AheadFull], await shard.TryUse([NonceUse.Of("other:one-more", ahead), NonceUse.Of("k0:one-more", ahead)]));
    }

    [Fact]
    public async Task A_nonce_shard_whose_store_fails_refuses_what_it_could_not_store_and_restarts()
    {
        // Every write of the ledger's storage fails while the armed file exists.
        var armed = Path.Combine(Path.GetTempPath(), $"nonce-chaos-{Guid.NewGuid():N}");
        await using var ledger = api.WithSettings(
            ("Transactor:Auth:SignatureMaxAhead", "00:05:00"),
            ("Transactor:Chaos:StorageWriteFailureProbability", "1"),
            ("Transactor:Chaos:ArmedFile", armed));
        var shard = ledger.Services.GetRequiredService<IClusterClient>().GetGrain<INonceGrain>(7);
        var (ahead, now) = (DateTimeOffset.UtcNow.AddMinutes(2), DateTimeOffset.UtcNow);
        Assert.Equal([NonceOutcome.Fresh], await shard.TryUse([NonceUse.Of("k:first", now)]));
        try
        {
            await File.WriteAllTextAsync(armed, "");
            await Task.Delay(TimeSpan.FromMilliseconds(600));
            // The nonce to store is refused; the one in memory stands (a replay of it is still refused).
            Assert.Equal([NonceOutcome.StoreFailed, NonceOutcome.Fresh], await shard.TryUse([NonceUse.Of("k:ahead", ahead), NonceUse.Of("k:in-memory", now)]));
        }
        finally
        {
            File.Delete(armed);
        }

        await Task.Delay(TimeSpan.FromMilliseconds(600));
        // A new activation: what the last one held in memory cannot be judged, the refused nonce was never accepted.
        Assert.Equal([NonceOutcome.BeforeShardStart, NonceOutcome.BeforeShardStart, NonceOutcome.Fresh],
            await shard.TryUse([NonceUse.Of("k:first", now), NonceUse.Of("k:in-memory", now), NonceUse.Of("k:ahead", ahead)]));
        Assert.Equal([NonceOutcome.Replayed], await shard.TryUse([NonceUse.Of("k:ahead", ahead)]));
    }

    [Fact]
    public async Task Made_up_key_ids_from_one_address_get_429_before_they_cost_a_grain_activation()
    {
        await using var ledger = api.WithSettings(("Transactor:Auth:KeyLookups:TokensPerSecond", "1"), ("Transactor:Auth:KeyLookups:Burst", "2"));
        using var anonymous = ledger.Server.CreateClient();
        var ids = Enumerable.Range(0, 6).Select(_ => ApiKeySecrets.NewKeyId()).ToArray();
        var codes = new List<string>();
        foreach (var id in ids)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/accounts");
            request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {ApiKeySecrets.Format(id, ApiKeySecrets.NewSecret())}");
            using var response = await anonymous.SendAsync(request);
            var code = (await response.Body()).GetProperty("code").GetString()!;
            codes.Add(code);
            if (code == "rate_limited")
            {
                Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
                Assert.True(response.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After {response.Headers.RetryAfter}");
            }
            else
            {
                Assert.Equal((HttpStatusCode.Unauthorized, "api_key_unknown"), (response.StatusCode, code));
            }
        }

        Assert.Equal(TwoUnknown, codes.Take(2));
        Assert.Contains("rate_limited", codes);

        // The ids that were looked up have key grains; the refused ones never got one.
        var grains = ledger.Services.GetRequiredService<IClusterClient>();
        var active = (await grains.GetGrain<IManagementGrain>(0).GetActiveGrains(grains.GetGrain<IApiKeyGrain>(ids[0]).GetGrainId().Type))
            .Select(g => g.Key.ToString()).ToHashSet();
        for (var i = 0; i < ids.Length; i++)
        {
            Assert.True(active.Contains(ids[i]) == (codes[i] == "api_key_unknown"), $"key {ids[i]} ({codes[i]}) active: {active.Contains(ids[i])}");
        }

        // A key the instance knows costs no lookup: the admin key still works from the same address.
        using var admin = ledger.Server.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiFixture.AdminKey);
        using var listed = await admin.GetAsync("/accounts?limit=1");
        Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
    }

    [Fact]
    public async Task A_client_keys_batch_moves_its_own_money_and_refuses_alone_each_item_that_debits_another_owner()
    {
        using var alice = await ClientWithNewKey("alice-batch");
        using var mallory = await ClientWithNewKey("mallory-batch");
        var mine = await alice.OpenAccount();
        var theirs = await mallory.OpenAccount();
        await DepositAs(_admin, mine, 1_000);
        await DepositAs(_admin, theirs, 500);
        var missing = $"acct-{Guid.NewGuid():N}";
        string[] ids = [Key(), Key(), Key(), Key()];
        var batch = $$"""
            [{"id":"{{ids[0]}}","from":"{{mine}}","to":"{{theirs}}","amount":100,"currency":"USD"},
             {"id":"{{ids[1]}}","from":"{{theirs}}","to":"{{mine}}","amount":50,"currency":"USD"},
             {"id":"{{ids[2]}}","from":"{{missing}}","to":"{{mine}}","amount":10,"currency":"USD"},
             {"id":"{{ids[3]}}","from":"{{mine}}","to":"{{theirs}}","amount":20,"currency":"USD"}]
            """;

        foreach (var attempt in new[] { "first", "again" })
        {
            using var response = await alice.SendAsync(Http.Post("/transfers/batch", batch));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var results = (await response.Body()).GetProperty("results").EnumerateArray().ToArray();
            Assert.Equal(BatchStatuses, results.Select(r => r.GetProperty("status").GetInt32()));
            Assert.Equal(ids, results.Select(r => r.GetProperty("id").GetString()));
            foreach (var refused in results[1..3])
            {
                Assert.Equal("not_owner", refused.GetProperty("problem").GetProperty("code").GetString());
                Assert.DoesNotContain(theirs, refused.GetRawText(), StringComparison.Ordinal);
                Assert.DoesNotContain(missing, refused.GetRawText(), StringComparison.Ordinal);
            }

            // Alice sees her account's balance in her results, not mallory's.
            var transfer = results[0].GetProperty("transfer");
            Assert.Equal(JsonValueKind.Object, transfer.GetProperty("from_account").ValueKind);
            Assert.Equal(JsonValueKind.Null, transfer.GetProperty("to_account").ValueKind);
            Assert.Equal(attempt == "again", results[0].GetProperty("replayed").GetBoolean());
            Assert.Equal((880L, 620L), (await _admin.Available(mine), await _admin.Available(theirs)));
        }

        // A batch takes a token per transfer from the key's bucket.
        var (smallKey, _) = await CreateKey(_admin, "small bucket", "client", ratePerSecond: 1, burst: 3);
        using var small = Authorized(api.Server.CreateClient(), smallKey);
        var own = await small.OpenAccount();
        await DepositAs(_admin, own, 100);
        string Items(int count) => "[" + string.Join(',', Enumerable.Range(0, count).Select(_ => $$"""{"id":"{{Key()}}","from":"{{own}}","to":"{{mine}}","amount":1,"currency":"USD"}""")) + "]";
        using (var tooBig = await small.SendAsync(Http.Post("/transfers/batch", Items(4))))
        {
            await tooBig.AssertProblem(HttpStatusCode.BadRequest, "batch_exceeds_bucket");
        }

        // Three tokens a batch against a refill of one a second: one of a few batches in a row is refused whole.
        var accepted = 0;
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 4 && limited is null; i++)
        {
            var response = await small.SendAsync(Http.Post("/transfers/batch", Items(3)));
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited = response;
                continue;
            }

            Assert.Equal(3, (await response.Body()).GetProperty("succeeded").GetInt32());
            response.Dispose();
            accepted++;
        }

        Assert.NotNull(limited);
        using (limited)
        {
            await limited.AssertProblem(HttpStatusCode.TooManyRequests, "rate_limited");
            Assert.True(limited.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        }

        Assert.Equal((880L + (3 * accepted), 620L), (await _admin.Available(mine), await _admin.Available(theirs)));
    }

    [Fact]
    public async Task Metrics_need_an_admin_key_and_the_API_reference_is_admin_only_unless_public()
    {
        using var anonymous = api.Server.CreateClient();
        using var client = await ClientWithNewKey("metrics reader");
        using (var refused = await anonymous.GetAsync("/metrics"))
        {
            await refused.AssertProblem(HttpStatusCode.Unauthorized, "api_key_missing");
        }

        using (var forbidden = await client.GetAsync("/metrics"))
        {
            await forbidden.AssertProblem(HttpStatusCode.Forbidden, "forbidden");
        }

        using (var allowed = await _admin.GetAsync("/metrics"))
        {
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        }

        // The embedded ledger (this fixture) publishes its reference; a ledger that does not, to admins only.
        using (var open = await anonymous.GetAsync("/openapi/v1.json"))
        {
            Assert.Equal(HttpStatusCode.OK, open.StatusCode);
        }

        await using var closed = api.WithSettings(("Transactor:Auth:PublicDocs", "false"));
        using var closedAnonymous = closed.Server.CreateClient();
        using var closedAdmin = closed.CreateClient();
        foreach (var path in new[] { "/openapi/v1.json", "/scalar/v1" })
        {
            using var refused = await closedAnonymous.GetAsync(path);
            await refused.AssertProblem(HttpStatusCode.Unauthorized, "api_key_missing");
            using var allowed = await closedAdmin.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        }

        using var health = await closedAnonymous.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task The_Orleans_Dashboard_answers_loopback_only_or_its_configured_password()
    {
        // Requests through the test server come from no address: not this machine.
        using (var remote = await api.Server.CreateClient().GetAsync("/dashboard/"))
        {
            await remote.AssertProblem(HttpStatusCode.Forbidden, "dashboard_local_only");
        }

        const string password = "dashboard-password-0123456789";
        await using var guarded = api.WithSettings(("Transactor:Dashboard:Password", password));
        using var browser = guarded.Server.CreateClient();
        using (var challenged = await browser.GetAsync("/dashboard/"))
        {
            await challenged.AssertProblem(HttpStatusCode.Unauthorized, "dashboard_password_required");
            Assert.Equal("Basic", challenged.Headers.WwwAuthenticate.Single().Scheme);
        }

        foreach (var (credentials, expected) in new[] { ("ops:wrong-password-0123456789", HttpStatusCode.Unauthorized), ($"ops:{password}", HttpStatusCode.OK), ($":{password}", HttpStatusCode.OK) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/dashboard/");
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials)));
            using var response = await browser.SendAsync(request);
            Assert.True(expected == response.StatusCode, $"{credentials}: {(int)response.StatusCode}");
        }
    }

    /// <summary>
    /// <c>Transactor:Dashboard:Enabled=false</c> takes the Orleans Dashboard out: none of its grain
    /// call filter or services are there (what it costs is docs/benchmarks.md's), <c>/dashboard/</c>
    /// is 404, and the ledger serves as before. By default the filter is there.
    /// </summary>
    [Fact]
    public async Task With_the_dashboard_off_its_filter_is_gone_its_path_is_404_and_the_ledger_serves()
    {
        static bool HasProfiler(IServiceProvider services) =>
            services.GetServices<Orleans.IIncomingGrainCallFilter>().Any(f => f.GetType().Namespace?.StartsWith("Orleans.Dashboard", StringComparison.Ordinal) == true);
        Assert.True(HasProfiler(api.Services), "the dashboard's grain call filter should be there by default");

        await using var plain = api.WithSettings(("Transactor:Dashboard:Enabled", "false"));
        Assert.False(HasProfiler(plain.Services), "the dashboard is off, yet its grain call filter is there");
        using var admin = Authorized(plain.Server.CreateClient(), ApiFixture.AdminKey);
        using (var dashboard = await admin.GetAsync("/dashboard/"))
        {
            Assert.Equal(HttpStatusCode.NotFound, dashboard.StatusCode);
        }

        var (from, to) = (LongAccountId("nodash-a"), LongAccountId("nodash-b"));
        foreach (var id in new[] { from, to })
        {
            using var opened = await admin.PostAsync("/accounts", new StringContent($$"""{"id":"{{id}}","currency":"USD"}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Created, opened.StatusCode);
        }

        using (var deposit = new HttpRequestMessage(HttpMethod.Post, $"/accounts/{from}/deposits") { Content = new StringContent("""{"amount":500}""", Encoding.UTF8, "application/json") })
        {
            deposit.Headers.Add("Idempotency-Key", $"nodash-dep-{Guid.NewGuid():N}");
            using var deposited = await admin.SendAsync(deposit);
            Assert.Equal(HttpStatusCode.Created, deposited.StatusCode);
        }

        using var transfer = new HttpRequestMessage(HttpMethod.Post, "/transfers") { Content = new StringContent($$"""{"from":"{{from}}","to":"{{to}}","amount":200,"currency":"USD"}""", Encoding.UTF8, "application/json") };
        transfer.Headers.Add("Idempotency-Key", $"nodash-t-{Guid.NewGuid():N}");
        using var moved = await admin.SendAsync(transfer);
        Assert.Equal(HttpStatusCode.Created, moved.StatusCode);
        using var balance = await admin.GetAsync($"/accounts/{to}");
        Assert.Contains("\"available\":200", await balance.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Review of linked transfers, M2: a key that must sign sends any body the endpoint takes unsigned,
    /// here a linked transfer of 100 legs with full metadata (over 16 KiB), and a signed body over the
    /// endpoint's limit is 413 payload_too_large, never 401, with nothing moved, whether its length is
    /// declared or not; the limit is each endpoint's own.
    /// </summary>
    [Fact]
    public async Task A_signing_key_sends_a_linked_transfer_of_100_legs_and_a_signed_body_over_the_endpoints_limit_is_413()
    {
        var (key, _) = await CreateKey("signed-legs", "client", requireSignature: true);
        var signingKey = ApiKeySecrets.SigningKey(key.Split('.')[2]);
        using var client = Authorized(api.Server.CreateClient(), key);
        var now = DateTimeOffset.UtcNow;
        var payer = LongAccountId("payer");
        using (var open = await client.SendAsync(Signed(signingKey, HttpMethod.Post, "/accounts", $$"""{"id":"{{payer}}","currency":"USD"}""", now)))
        {
            Assert.Equal(HttpStatusCode.Created, open.StatusCode);
        }

        await DepositAs(_admin, payer, 10_000);
        var payees = new string[10];
        for (var i = 0; i < payees.Length; i++)
        {
            payees[i] = LongAccountId($"payee{i}");
            using var open = await _admin.SendAsync(Http.Post("/accounts", $$"""{"id":"{{payees[i]}}","currency":"USD"}"""));
            Assert.Equal(HttpStatusCode.Created, open.StatusCode);
        }

        var legs = string.Join(",", Enumerable.Range(0, 100).Select(i => $$"""{"from":"{{payer}}","to":"{{payees[i % payees.Length]}}","amount":{{i + 1}},"currency":"USD"}"""));
        var metadata = "{" + string.Join(",", Enumerable.Range(0, 16).Select(i => $"\"key{i}\":\"{new string('v', 256)}\"")) + "}";
        var json = $$"""{"legs":[{{legs}}],"metadata":{{metadata}}}""";
        Assert.InRange(Encoding.UTF8.GetByteCount(json), 16 * 1024 + 1, 64 * 1024);
        var before = await Balances([payer, .. payees]);

        // Over the endpoint's limit (64 KiB for POST /transfers), signed correctly: 413, with and without a declared length.
        var oversize = json + new string(' ', 64 * 1024);
        var oversizeKey = Key();
        using (var declared = await client.SendAsync(Signed(signingKey, HttpMethod.Post, "/transfers", oversize, now, oversizeKey)))
        {
            await declared.AssertProblem(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        }

        using (var streamed = Signed(signingKey, HttpMethod.Post, "/transfers", oversize, now, oversizeKey))
        {
            streamed.Content?.Dispose();
            streamed.Content = new UnsizedContent(Encoding.UTF8.GetBytes(oversize));
            using var response = await client.SendAsync(streamed);
            await response.AssertProblem(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        }

        // The limit is each endpoint's: a deposit's body (16 KiB at most) of 20 KiB is 413 too.
        using (var deposit = await client.SendAsync(Signed(signingKey, HttpMethod.Post, $"/accounts/{payer}/deposits", """{"amount":1}""" + new string(' ', 20 * 1024), now, Key())))
        {
            await deposit.AssertProblem(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        }

        Assert.Equal(before, await Balances([payer, .. payees]));
        using (var none = await _admin.GetAsync($"/transfers/{oversizeKey}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
        }

        // Within it, signed: the 100 legs are applied.
        using (var created = await client.SendAsync(Signed(signingKey, HttpMethod.Post, "/transfers", json, now, Key())))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Equal(100, (await created.Body()).GetProperty("legs").GetArrayLength());
        }

        Assert.Equal(10_000 - 5_050, await _admin.Available(payer));
        for (var i = 0; i < payees.Length; i++)
        {
            // Payee i got legs i+1, i+11, ..., i+91.
            Assert.Equal(Enumerable.Range(0, 10).Sum(k => i + 1 + 10 * k), await _admin.Available(payees[i]));
        }
    }

    /// <summary>
    /// Review of linked transfers, M3 and M5: a client key reads of a linked transfer the legs that name
    /// an account it owns, as it would read each of them were it a transfer of its own (with the
    /// movement's metadata, and balances of its own accounts only), and nothing of the other legs'
    /// accounts; a key that owns none of its accounts gets 403; a client key cannot debit another's
    /// account in any leg.
    /// </summary>
    [Fact]
    public async Task A_client_key_reads_only_the_legs_of_a_linked_transfer_that_name_its_accounts()
    {
        using var payerKey = await ClientWithNewKey("payer");
        using var merchantKey = await ClientWithNewKey("merchant");
        using var partnerKey = await ClientWithNewKey("partner");
        using var strangerKey = await ClientWithNewKey("stranger");
        var payer = await payerKey.OpenAccount(5_000);
        var merchant = await merchantKey.OpenAccount();
        var partner = await partnerKey.OpenAccount();
        var fees = await _admin.OpenAccount();
        var key = Key();
        var json = $$$"""{"legs":[{"from":"{{{payer}}}","to":"{{{merchant}}}","amount":2000,"currency":"USD"},{"from":"{{{payer}}}","to":"{{{fees}}}","amount":50,"currency":"USD"},{"from":"{{{payer}}}","to":"{{{partner}}}","amount":300,"currency":"USD"}],"metadata":{"orderId":"o-9"}}""";

        using (var created = await payerKey.SendAsync(Http.Post("/transfers", json, key)))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var answer = await created.Body();
            Assert.Equal((3, 2350L), (answer.GetProperty("legs").GetArrayLength(), answer.GetProperty("amount").GetInt64()));
            Assert.Equal([payer], answer.GetProperty("accounts").EnumerateArray().Select(a => a.GetProperty("id").GetString()!));
        }

        // The payer's key reads all three legs; the merchant's and the partner's each their own leg.
        var payerRead = await payerKey.GetFromJsonAsync<JsonElement>($"/transfers/{key}");
        Assert.Equal([0, 1, 2], payerRead.GetProperty("legs").EnumerateArray().Select(l => l.GetProperty("index").GetInt32()));
        foreach (var (reader, account, leg, amount) in new[] { (merchantKey, merchant, 0, 2000L), (partnerKey, partner, 2, 300L) })
        {
            using var response = await reader.GetAsync($"/transfers/{key}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var read = await response.Body();
            var raw = read.GetRawText();
            var only = Assert.Single(read.GetProperty("legs").EnumerateArray());
            Assert.Equal((payer, account, amount, leg), (only.GetProperty("from").GetString(), only.GetProperty("to").GetString(), only.GetProperty("amount").GetInt64(), only.GetProperty("index").GetInt32()));
            Assert.Equal((amount, "USD", "o-9"), (read.GetProperty("amount").GetInt64(), read.GetProperty("currency").GetString(), read.GetProperty("metadata").GetProperty("orderId").GetString()));
            var balances = Assert.Single(read.GetProperty("accounts").EnumerateArray());
            Assert.Equal((account, amount), (balances.GetProperty("id").GetString(), balances.GetProperty("available").GetInt64()));
            foreach (var other in new[] { fees, merchant, partner }.Where(a => a != account))
            {
                Assert.DoesNotContain(other, raw, StringComparison.Ordinal);
            }
        }

        using (var stranger = await strangerKey.GetAsync($"/transfers/{key}"))
        {
            await stranger.AssertProblem(HttpStatusCode.Forbidden, "not_owner");
        }

        // A rejected one: the leg at fault is named to a reader who sees it, and to no other.
        var rejectedKey = Key();
        var overdraft = $$"""{"legs":[{"from":"{{payer}}","to":"{{merchant}}","amount":10,"currency":"USD"},{"from":"{{payer}}","to":"{{partner}}","amount":999999,"currency":"USD"}]}""";
        using (var rejected = await payerKey.SendAsync(Http.Post("/transfers", overdraft, rejectedKey)))
        {
            await rejected.AssertProblem(HttpStatusCode.UnprocessableEntity, "insufficient_funds");
        }

        var merchantSees = await merchantKey.GetFromJsonAsync<JsonElement>($"/transfers/{rejectedKey}");
        var partnerSees = await partnerKey.GetFromJsonAsync<JsonElement>($"/transfers/{rejectedKey}");
        Assert.Equal(("rejected", 0), (merchantSees.GetProperty("status").GetString(), merchantSees.GetProperty("failed_leg").GetInt32()));
        Assert.Equal(("rejected", JsonValueKind.Null), (partnerSees.GetProperty("status").GetString(), partnerSees.GetProperty("failed_leg").ValueKind));
        Assert.Equal(1, Assert.Single(partnerSees.GetProperty("legs").EnumerateArray()).GetProperty("index").GetInt32());

        // The merchant's key may not debit the payer's account in a leg, beside one of its own.
        var before = await Balances(payer, merchant, partner, fees);
        var stealing = $$"""{"legs":[{"from":"{{merchant}}","to":"{{partner}}","amount":1,"currency":"USD"},{"from":"{{payer}}","to":"{{merchant}}","amount":100,"currency":"USD"}]}""";
        using (var forbidden = await merchantKey.SendAsync(Http.Post("/transfers", stealing, Key())))
        {
            await forbidden.AssertProblem(HttpStatusCode.Forbidden, "not_owner");
        }

        Assert.Equal(before, await Balances(payer, merchant, partner, fees));
        Assert.Equal((2_650L, 2_000L, 300L, 50L), (await _admin.Available(payer), await _admin.Available(merchant), await _admin.Available(partner), await _admin.Available(fees)));
    }

    private static string Key() => $"sec-{Guid.NewGuid():N}";

    /// <summary>An account id of 60 characters, unused.</summary>
    private static string LongAccountId(string name) => $"{name}-{Guid.NewGuid():N}".PadRight(60, 'x');

    private static string Nonce() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    private static HttpRequestMessage Signed(byte[] signingKey, HttpMethod method, string pathAndQuery, string? body, DateTimeOffset at, string? idempotencyKey = null, string? nonce = null)
    {
        var request = new HttpRequestMessage(method, pathAndQuery);
        if (body is not null)
        {
            request.Content = Http.Json(body);
        }

        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        nonce ??= Nonce();
        var timestamp = at.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var question = pathAndQuery.IndexOf('?', StringComparison.Ordinal);
        var (path, query) = question < 0 ? (pathAndQuery, "") : (pathAndQuery[..question], pathAndQuery[(question + 1)..]);
        var canonical = RequestSignatures.CanonicalString(method.Method, path, query, timestamp, nonce, SHA256.HashData(Encoding.UTF8.GetBytes(body ?? "")));
        request.Headers.Add(RequestSignatures.TimestampHeader, timestamp);
        request.Headers.Add(RequestSignatures.NonceHeader, nonce);
        request.Headers.Add(RequestSignatures.SignatureHeader, RequestSignatures.Sign(signingKey, canonical));
        return request;
    }

    private static async Task AssertRefused(HttpClient client, HttpRequestMessage request, string code)
    {
        using (request)
        {
            using var response = await client.SendAsync(request);
            await response.AssertProblem(HttpStatusCode.Unauthorized, code);
        }
    }

    private Task<(string Key, string Id)> CreateKey(string name, string role, bool requireSignature = false, int? ratePerSecond = null, int? burst = null) =>
        CreateKey(_admin, name, role, requireSignature, ratePerSecond, burst);

    private static async Task<(string Key, string Id)> CreateKey(HttpClient admin, string name, string role, bool requireSignature = false, int? ratePerSecond = null, int? burst = null)
    {
        var body = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["name"] = name, ["role"] = role, ["require_signature"] = requireSignature, ["rate_per_second"] = ratePerSecond, ["burst"] = burst,
        });
        using var created = await admin.SendAsync(Http.Post("/keys", body));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var json = await created.Body();
        return (json.GetProperty("key").GetString()!, json.GetProperty("details").GetProperty("id").GetString()!);
    }

    private async Task<HttpClient> ClientWithNewKey(string name) => Authorized(api.Server.CreateClient(), (await CreateKey(name, "client")).Key);

    private static HttpClient Authorized(HttpClient client, string key)
    {
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    private static async Task<string> DepositAs(HttpClient client, string account, long amount)
    {
        var key = Key();
        using var response = await client.SendAsync(Http.Post($"/accounts/{account}/deposits", $$"""{"amount":{{amount}}}""", key));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return key;
    }

    /// <summary>Each account's available, held and reserved balances, read with the admin key.</summary>
    private async Task<string[]> Balances(params string[] accounts)
    {
        var balances = new string[accounts.Length];
        for (var i = 0; i < accounts.Length; i++)
        {
            var body = await (await _admin.GetAsync($"/accounts/{accounts[i]}")).Body();
            balances[i] = $"{accounts[i]}: available {body.GetProperty("available")}, held {body.GetProperty("held")}, reserved {body.GetProperty("reserved")}";
        }

        return balances;
    }

    private static IEnumerable<HttpRequestMessage> EveryEndpoint(string from, string to, string deposit)
    {
        yield return Http.Post("/accounts", $$"""{"id":"acct-{{Guid.NewGuid():N}}","currency":"USD"}""");
        yield return new HttpRequestMessage(HttpMethod.Get, "/accounts");
        yield return new HttpRequestMessage(HttpMethod.Get, $"/accounts/{from}");
        yield return Http.Post($"/accounts/{from}/deposits", """{"amount":10}""", Key());
        yield return Http.Post($"/accounts/{from}/withdrawals", """{"amount":10}""", Key());
        yield return Http.Post($"/accounts/{from}/disputes", $$"""{"deposit":"{{deposit}}"}""");
        yield return Http.Post($"/accounts/{from}/resolves", $$"""{"deposit":"{{deposit}}"}""");
        yield return Http.Post($"/accounts/{from}/chargebacks", $$"""{"deposit":"{{deposit}}"}""");
        yield return Http.Post("/transfers", $$"""{"from":"{{from}}","to":"{{to}}","amount":10,"currency":"USD"}""", Key());
        yield return Http.Post("/transfer", $$"""{"from":"{{from}}","to":"{{to}}","amount":10}""", Key());
        yield return new HttpRequestMessage(HttpMethod.Get, $"/transfers/{deposit}");
        yield return Http.Post("/keys", """{"name":"x"}""");
        yield return new HttpRequestMessage(HttpMethod.Get, "/keys");
        yield return new HttpRequestMessage(HttpMethod.Delete, "/keys/k0123456789abcdef");
    }
}

/// <summary>A body sent without a declared length (chunked), so that the server finds its size only by reading it.</summary>
internal sealed class UnsizedContent : HttpContent
{
    private readonly byte[] _bytes;

    public UnsizedContent(byte[] bytes)
    {
        _bytes = bytes;
        Headers.ContentType = new MediaTypeHeaderValue("application/json");
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => stream.WriteAsync(_bytes).AsTask();

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
