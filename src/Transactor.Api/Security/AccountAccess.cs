using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Caching.Memory;
using Transactor.Api.Http;

namespace Transactor.Api.Security;

/// <summary>An account as authorization sees it: its owner, or not open.</summary>
public sealed record OwnedAccount(string AccountId, string? Owner, bool Open);

/// <summary>The caller must own the account (admins may act on any).</summary>
public sealed class AccountOwnerRequirement : IAuthorizationRequirement
{
    public const string Policy = "account-owner";
}

/// <summary>Grants <see cref="AccountOwnerRequirement"/> to admin keys and to the key that owns the open account.</summary>
public sealed class AccountOwnerHandler : AuthorizationHandler<AccountOwnerRequirement, OwnedAccount>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, AccountOwnerRequirement requirement, OwnedAccount resource)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(resource);
        if (context.User.IsAdmin() || (resource.Open && resource.Owner is { } owner && owner == context.User.KeyId()))
        {
            context.Succeed(requirement);
        }

        return Task.CompletedTask;
    }
}

/// <summary>
/// Checks that the caller owns an account, through the <see cref="AccountOwnerRequirement"/> policy.
/// An account's owner never changes once it is open, so each API instance caches owners (bounded);
/// an account not open is looked up again each time. Admin keys skip the lookup.
/// </summary>
public sealed class AccountAccess(IClusterClient client, IAuthorizationService authorization) : IDisposable
{
    /// <summary>The most account owners one API instance remembers.</summary>
    public const int MaxCachedOwners = 100_000;

    private readonly MemoryCache _owners = new(new MemoryCacheOptions { SizeLimit = MaxCachedOwners });

    /// <summary>
    /// Null when the caller may debit or read account <paramref name="accountId"/>; else the 403
    /// problem, the same whether the account is someone else's or does not exist.
    /// </summary>
    public async Task<IResult?> RequireOwner(HttpContext context, string accountId)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.User.IsAdmin())
        {
            return null;
        }

        var account = await Find(accountId);
        var decision = await authorization.AuthorizeAsync(context.User, account, AccountOwnerRequirement.Policy);
        return decision.Succeeded ? null : NotOwner();
    }

    /// <summary>True when the caller may see <paramref name="account"/>'s balances.</summary>
    public static bool MaySee(HttpContext context, AccountSnapshot account) =>
        context.User.IsAdmin() || account.Owner == context.User.KeyId();

    /// <summary>Remembers the owner of an account the API has just seen open.</summary>
    public void Remember(AccountSnapshot account) =>
        _owners.Set(account.AccountId, account.Owner, new MemoryCacheEntryOptions { Size = 1 });

    public static IResult NotOwner() =>
        Problems.Create(StatusCodes.Status403Forbidden, "not_owner", "The API key does not own this account.",
            "A client key may debit and read only the accounts it opened (or an admin opened for it).");

    private async Task<OwnedAccount> Find(string accountId)
    {
        if (_owners.TryGetValue(accountId, out string? owner))
        {
            return new OwnedAccount(accountId, owner, true);
        }

        if (!Ids.IsValidAccountId(accountId))
        {
            return new OwnedAccount(accountId, null, false);
        }

        var snapshot = await client.GetAccount(accountId).GetSnapshot();
        if (snapshot is null)
        {
            return new OwnedAccount(accountId, null, false);
        }

        Remember(snapshot);
        return new OwnedAccount(accountId, snapshot.Owner, true);
    }

    public void Dispose() => _owners.Dispose();
}
