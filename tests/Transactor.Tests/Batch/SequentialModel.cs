using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Transactor.Tests.Batch;

/// <summary>
/// The batch rules written as plainly as possible, sharing no code with the engine: strings split on
/// commas, <see cref="decimal"/> amounts, one dictionary per concept, one row after another.
/// The engine must produce exactly this model's output and report exactly its malformed lines.
/// </summary>
internal static partial class SequentialModel
{
    private static readonly decimal MaxTotal = long.MaxValue / 10_000m;

    public static (string Output, List<long> MalformedLines) Run(string csv)
    {
        var accounts = new SortedDictionary<int, Account>();
        var usedTx = new HashSet<long>();
        var malformed = new List<long>();
        var lines = csv.Split('\n');
        var headerSeen = false;
        for (var i = 0; i < lines.Length; i++)
        {
            var lineNumber = i + 1;
            var line = lines[i];
            if (i == 0 && line.StartsWith('\uFEFF'))
            {
                line = line[1..];
            }

            if (line.Trim(' ', '\t', '\r').Length == 0)
            {
                continue;
            }

            if (!headerSeen)
            {
                headerSeen = true;
                var names = line.Split(',').Select(f => f.Trim(' ', '\t', '\r').ToLowerInvariant());
                if (!names.SequenceEqual(["type", "client", "tx", "amount"]))
                {
                    throw new InvalidOperationException("bad header");
                }

                continue;
            }

            var row = ParseRow(line);
            if (row is null)
            {
                malformed.Add(lineNumber);
                continue;
            }

            Apply(accounts, usedTx, row.Value);
        }

        var output = new StringBuilder("client,available,held,total,locked\n");
        foreach (var (client, account) in accounts)
        {
            output.Append(CultureInfo.InvariantCulture, $"{client},{account.Available:F4},{account.Held:F4},{account.Available + account.Held:F4},{(account.Locked ? "true" : "false")}\n");
        }

        return (output.ToString(), malformed);
    }

    private static void Apply(SortedDictionary<int, Account> accounts, HashSet<long> usedTx, Row row)
    {
        if (!accounts.TryGetValue(row.Client, out var account))
        {
            account = new Account();
            accounts.Add(row.Client, account);
        }

        var isMoney = row.Type is "deposit" or "withdrawal";

        // The first well-formed deposit or withdrawal row with an id claims it, whatever becomes of that row.
        if (isMoney && !usedTx.Add(row.Tx))
        {
            return;
        }

        if (account.Locked)
        {
            return;
        }

        if (isMoney && row.Amount <= 0)
        {
            return;
        }

        switch (row.Type)
        {
            case "deposit":
                if (account.Available + account.Held + row.Amount <= MaxTotal)
                {
                    account.Available += row.Amount;
                    account.Deposits[row.Tx] = new Deposit(row.Amount);
                }

                break;
            case "withdrawal":
                if (account.Available >= row.Amount)
                {
                    account.Available -= row.Amount;
                }

                break;
            case "dispute":
                if (account.Deposits.TryGetValue(row.Tx, out var disputed) && disputed.State == "settled" && account.Available >= disputed.Amount)
                {
                    disputed.State = "disputed";
                    account.Available -= disputed.Amount;
                    account.Held += disputed.Amount;
                }

                break;
            case "resolve":
                if (account.Deposits.TryGetValue(row.Tx, out var resolved) && resolved.State == "disputed")
                {
                    resolved.State = "settled";
                    account.Held -= resolved.Amount;
                    account.Available += resolved.Amount;
                }

                break;
            case "chargeback":
                if (account.Deposits.TryGetValue(row.Tx, out var reversed) && reversed.State == "disputed")
                {
                    reversed.State = "charged back";
                    account.Held -= reversed.Amount;
                    account.Locked = true;
                }

                break;
        }
    }

    private static Row? ParseRow(string line)
    {
        var fields = line.Split(',').Select(f => f.Trim(' ', '\t', '\r')).ToArray();
        var type = fields[0].ToLowerInvariant();
        if (fields.Length > 4 || type is not ("deposit" or "withdrawal" or "dispute" or "resolve" or "chargeback") || fields.Length < 3)
        {
            return null;
        }

        if (!Digits().IsMatch(fields[1]) || !ushort.TryParse(fields[1], CultureInfo.InvariantCulture, out var client))
        {
            return null;
        }

        if (!Digits().IsMatch(fields[2]) || !uint.TryParse(fields[2], CultureInfo.InvariantCulture, out var tx))
        {
            return null;
        }

        var amountText = fields.Length == 4 ? fields[3] : string.Empty;
        decimal amount = 0;
        if (type is "deposit" or "withdrawal" || amountText.Length > 0)
        {
            var match = Amount().Match(amountText);
            if (!match.Success || match.Groups["whole"].Length + match.Groups["fraction"].Length == 0 || match.Groups["fraction"].Length > 4)
            {
                return null;
            }

            if (!decimal.TryParse(amountText, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out amount)
                || Math.Abs(amount) > MaxTotal)
            {
                return null;
            }
        }

        return new Row(type, client, tx, type is "deposit" or "withdrawal" ? amount : 0);
    }

    [GeneratedRegex("^[0-9]+$")]
    private static partial Regex Digits();

    [GeneratedRegex(@"^[+-]?(?<whole>[0-9]*)(\.(?<fraction>[0-9]*))?$")]
    private static partial Regex Amount();

    private readonly record struct Row(string Type, int Client, uint Tx, decimal Amount);

    private sealed class Account
    {
        public decimal Available { get; set; }

        public decimal Held { get; set; }

        public bool Locked { get; set; }

        public Dictionary<uint, Deposit> Deposits { get; } = [];
    }

    private sealed class Deposit(decimal amount)
    {
        public decimal Amount { get; } = amount;

        public string State { get; set; } = "settled";
    }
}
