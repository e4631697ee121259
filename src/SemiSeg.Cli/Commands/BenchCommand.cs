using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SemiSeg.Training;

namespace SemiSeg.Cli.Commands;

internal static class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", "Time training iterations of the standard 2D UNet as ../shared/bench/peer_mt.py does (median after warm-up), with GFLOP/s, GEMM peak, peak memory and inference throughput.");
        var mode = new Option<string>("--mode") { Description = "mt: one Mean-Teacher iteration as in peer_mt.py; supervised: one supervised step", DefaultValueFactory = _ => "mt" };
        mode.AcceptOnlyFromAmong("mt", "supervised");
        var size = new Option<int>("--size") { Description = "Image size", DefaultValueFactory = _ => 256 };
        var batch = new Option<int>("--batch") { Description = "Batch size (half labeled in mt mode)", DefaultValueFactory = _ => 24 };
        var iters = new Option<int>("--iters") { Description = "Timed iterations", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed warm-up iterations", DefaultValueFactory = _ => 1 };
        var threads = new Option<int?>("--threads") { Description = "Torch threads (default: core count)" };
        var layout = new Option<string>("--layout") { Description = "Memory order of activations and weights: channels-last (default) or contiguous (NCHW)", DefaultValueFactory = _ => "channels-last" };
        layout.AcceptOnlyFromAmong("channels-last", "contiguous");
        var json = new Option<string?>("--json") { Description = "Also write the result as JSON to this file" };
        foreach (var o in new Option[] { mode, size, batch, iters, warmup, threads, layout, json }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            var res = Benchmark.Run(r.GetValue(mode)!, r.GetValue(size), r.GetValue(batch), r.GetValue(iters), r.GetValue(warmup), r.GetValue(threads), r.GetValue(layout) == "channels-last", Console.WriteLine);
            var ci = CultureInfo.InvariantCulture;
            Console.WriteLine(string.Create(ci, $"semiseg {res.Mode} ({r.GetValue(layout)}) size {res.Size} batch {res.Batch} threads {res.Threads}: median {res.MedianSeconds:F3} s/iter"));
            Console.WriteLine(string.Create(ci, $"  {res.GFlopPerIteration:F1} GFLOP/iter -> {res.AchievedGFlops:F1} GFLOP/s = {100 * res.AchievedGFlops / res.GemmPeakGFlops:F0}% of measured GEMM peak {res.GemmPeakGFlops:F1} GFLOP/s"));
            Console.WriteLine(string.Create(ci, $"  peak RSS {res.PeakRssMiB:F0} MiB; inference {res.InferenceSlicesPerSecond:F1} slices/s at {res.Size}x{res.Size}"));
            if (r.GetValue(json) is string path) Data.AtomicFile.WriteAllText(path, JsonSerializer.Serialize(res, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        return cmd;
    }
}
