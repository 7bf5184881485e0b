using ShareRpc.Examples.Guides;

// One guide's example per run; each starts its own server on a free loopback port and prints
// what it did. The exit code is 0 when every check the example makes held.
var dir = Directory.CreateTempSubdirectory("sharerpc-guide-").FullName;
try
{
    return args.FirstOrDefault() switch
    {
        "handoff" => await AgentHandoff.RunAsync(dir),
        "replicate" => await Replication.RunAsync(dir),
        "chaos" => await ChaosWorkload.RunAsync(dir),
        "operate" => await Operate.RunAsync(dir),
        _ => Usage(),
    };
}
finally
{
    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
    Directory.Delete(dir, recursive: true);
}

static int Usage()
{
    Console.Error.WriteLine("usage: Guides handoff | replicate | chaos | operate");
    return 2;
}
