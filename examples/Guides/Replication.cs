using System.Globalization;
using System.Text;
using ShareRpc.Client;
using ShareRpc.Server.Hosting;
using Sharerpc.V1;

namespace ShareRpc.Examples.Guides;

/// <summary>docs/guides/replicate-state.md: a service publishes its state changes; a replica keeps a copy, resuming from its cursor.</summary>
public static class Replication
{
    public static async Task<int> RunAsync(string dir)
    {
        await using var host = await ShareRpcServerHost.StartAsync(o => o.DataDirectory = Path.Combine(dir, "server"));

        // region publish
        // The service that owns the state writes every change as an op, through its outbox.
        await using var service = new ShareRpcClient(new() { OutboxPath = Path.Combine(dir, "orders-service.db") });
        var ownerRef = await service.EnsureShareAsync(host.Address, "orders");
        var writer = service.OpenWriter(ownerRef);
        await writer.PutAsync("orders", "o-1", Encoding.UTF8.GetBytes("""{"item":"book","qty":1}"""), "application/json");
        await writer.PutAsync("orders", "o-2", Encoding.UTF8.GetBytes("""{"item":"pen","qty":3}"""), "application/json");
        var shipped = await writer.PutAsync("orders", "o-1", Encoding.UTF8.GetBytes("""{"item":"book","qty":1,"shipped":true}"""), "application/json");
        await writer.DeleteAsync("orders", "o-2", dependsOn: [shipped.OpId]); // applied only after `shipped`
        await writer.FlushAsync();
        // endregion

        // region conflict
        // Optimistic concurrency: expected_version says which version the change was based on.
        // Another version there (a concurrent writer got in first) → REJECTED(VERSION_CONFLICT),
        // with the current version in the ack; nothing is applied, and the ack is final.
        var stale = await writer.PutAsync("orders", "o-1", Encoding.UTF8.GetBytes("""{"item":"book","qty":2}"""), "application/json", expectedVersion: 1);
        var outcome = await stale.Acked;
        Console.WriteLine($"stale update: {outcome.Status} {outcome.RejectReason}, current version {outcome.Version}");
        // endregion

        var readRef = (await service.DelegateAsync(ownerRef, [Right.Read], note: "replica")).SturdyRef;
        var cursorFile = Path.Combine(dir, "replica.cursor");

        // region replica
        // The replica: a snapshot the first time, then ops from the cursor after the last one it
        // applied. It stores that cursor with its copy (here a file; in a database, in the same
        // transaction as the rows), so a restart resumes exactly where it stopped.
        async Task<Dictionary<string, string>> ReplicateAsync(Dictionary<string, string> copy, ulong until)
        {
            await using var client = new ShareRpcClient();
            var applied = File.Exists(cursorFile) ? ulong.Parse(File.ReadAllText(cursorFile), CultureInfo.InvariantCulture) : 0;
            await foreach (var e in client.SubscribeAsync(readRef, fromCursor: applied + 1, includeSnapshot: applied == 0))
            {
                if (e.Snapshot is { } chunk)
                {
                    foreach (var d in chunk.Documents) copy[d.Key] = d.Value.ToStringUtf8();
                    if (!chunk.LastChunk) continue; // a large snapshot comes in chunks
                    applied = chunk.Cursor;
                }
                else if (e.Op is { } op)
                {
                    if (op.Op.Put is { } put) copy[put.Key] = put.Value.ToStringUtf8();
                    if (op.Op.Delete is { } del) copy.Remove(del.Key);
                    applied = op.Cursor;
                }
                else continue; // a heartbeat

                File.WriteAllText(cursorFile, applied.ToString(CultureInfo.InvariantCulture));
                if (applied >= until) break;
            }

            return copy;
        }
        // endregion

        var head = (await service.RedeemAsync(ownerRef)).Cursor;
        var replica = await ReplicateAsync(new Dictionary<string, string>(), head);
        Console.WriteLine($"replica at cursor {File.ReadAllText(cursorFile)}: {string.Join(", ", replica.OrderBy(kv => kv.Key).Select(kv => kv.Key + "=" + kv.Value))}");

        // The service goes on while the replica is down; the replica restarts from its cursor.
        var late = await writer.PutAsync("orders", "o-3", Encoding.UTF8.GetBytes("""{"item":"lamp","qty":1}"""), "application/json");
        await writer.FlushAsync();
        replica = await ReplicateAsync(replica, (await late.Acked).Cursor);
        var served = await service.GetAllDocumentsAsync(ownerRef, "orders").ToDictionaryAsync(d => d.Key, d => d.Value.ToStringUtf8());
        var same = served.Count == replica.Count && served.All(kv => replica.GetValueOrDefault(kv.Key) == kv.Value);
        Console.WriteLine($"replica resumed at cursor {File.ReadAllText(cursorFile)}: {replica.Count} orders; {(same ? "equals" : "DIFFERS FROM")} the server's snapshot");
        return same && outcome.RejectReason == RejectReason.VersionConflict ? 0 : 1;
    }
}
