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
        var plain = new Option<bool>("--plain") { Description = "A plain transcription for comparison: NCHW layout and out-of-place activations (overrides --layout)" };
        var data = new Option<string?>("--data") { Description = "Feed batches from the real loader: an ACDC root, an own-data folder/CSV, or 'phantom' (generated at --size); default: a fixed random batch like peer_mt.py" };
        var json = new Option<string?>("--json") { Description = "Also write the result as JSON to this file (every mode; with --method, each method's figures and every timed iteration's seconds)" };
        var volume = new Option<string?>("--sliding-window") { Description = "Instead: time 3D sliding-window inference of the VNet (LA protocol: patch 80x112x112, strides 4/18/18) over a random volume of D,H,W voxels (e.g. 88,144,144)" };
        var volumeTrain = new Option<string?>("--volume-method") { Description = "Instead: time one 3D training iteration of this volume method (supervised, mean-teacher, ua-mt, cps, bcp, mn) on VNet with peak memory; --patch and --volume-batch set the shape" };
        var volumePatch = new Option<string>("--patch") { Description = "3D patch D,H,W for --volume-method (the LA lineage's 112x112x80 is 80,112,112)", DefaultValueFactory = _ => "80,112,112" };
        var volumeBatch = new Option<string>("--volume-batch") { Description = "labeled,unlabeled patches per batch for --volume-method", DefaultValueFactory = _ => "2,2" };
        var method2d = new Option<string?>("--method") { Description = "Instead: time one training iteration of this 2D method (any of `semiseg methods`) at --size with --batch split half labeled, half unlabeled, and count its network passes (s/iteration ÷ passes is its cost per pass, to set beside mean-teacher's); --data feeds the real loader. A comma-separated list (e.g. mean-teacher,bcp,supervised@resunet) times the methods in one process, their iterations interleaved on the same batches, one line each" };
        var network2d = new Option<string>("--network") { Description = "2D network of --method's networks (unet, resunet, resnet18-unet, resnet34-unet; two-network methods keep their pairing)", DefaultValueFactory = _ => "unet" };
        var labeledCount = new Option<int?>("--labeled") { Description = "With --method and --data: labeled ACDC patients (default 7) or labeled images/cases of other data (default all)" };
        var deviceOption = MetricOptions.Device();
        foreach (var o in new Option[] { method2d, network2d, labeledCount, mode, size, batch, iters, warmup, threads, layout, plain, data, json, volume, volumeTrain, volumePatch, volumeBatch, deviceOption }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            var device = Runtime.ComputeDevice.Resolve(r.GetValue(deviceOption));
            bool channelsLast = !r.GetValue(plain) && r.GetValue(layout) == "channels-last";
            if (r.GetValue(iters) < 1) throw new ArgumentException($"--iters {r.GetValue(iters)}: at least 1 timed iteration is needed");
            if (r.GetValue(warmup) < 0) throw new ArgumentException($"--warmup {r.GetValue(warmup)}: must be 0 or more");
            if (r.GetValue(size) < 16 || r.GetValue(size) % 16 != 0) throw new ArgumentException($"--size {r.GetValue(size)}: must be a multiple of 16 (four 2x poolings), at least 16");
            if (r.GetValue(batch) < (r.GetValue(mode) == "mt" ? 2 : 1)) throw new ArgumentException($"--batch {r.GetValue(batch)}: {(r.GetValue(mode) == "mt" ? "mt mode needs at least 2 (half labeled)" : "must be at least 1")}");
            if (r.GetValue(method2d) is string m2)
            {
                int lab = r.GetValue(batch) / 2, unl = r.GetValue(batch) - r.GetValue(batch) / 2;
                if (lab < 1) throw new ArgumentException($"--batch {r.GetValue(batch)}: --method needs at least 2 (half labeled)");
                Data.DatasetManifest? man = null;
                if (r.GetValue(data) is string dsrc)
                {
                    man = Data.DatasetDetection.Load(dsrc, r.GetValue(labeledCount));
                    if (man.Unlabeled.Count == 0) throw new ArgumentException($"--data '{dsrc}': no unlabeled images at this split; give --labeled (ACDC: patients, otherwise images)");
                }
                var entries = m2.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                if (entries.Length == 0) throw new ArgumentException("--method: no method named");
                var specs = entries.Select(e => MethodSpec(e, r.GetValue(network2d)!)).ToArray();
                var timings = Benchmark.MethodSteps2D(specs, r.GetValue(size), lab, unl, r.GetValue(iters), r.GetValue(warmup), r.GetValue(threads), man, device);
                for (int i = 0; i < timings.Count; i++)
                {
                    var rm = timings[i];
                    double total = rm.Passes.Values.Sum();
                    var per = string.Join(", ", rm.Passes.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F2}")));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"semiseg 2D {entries[i]} size {r.GetValue(size)} batch {lab}+{unl} data {man?.Name ?? "fixed random batch"} threads {rm.Threads}: median {rm.Seconds:F3} s/iter, {total:F2} network passes ({per}), {rm.Seconds / total:F4} s/pass; data wait {1000 * rm.DataWaitSeconds:F1} ms/iter"));
                }
                WriteJson(r.GetValue(json), timings.Select(rm => new
                {
                    method = rm.Method.Method, network = Models.Segmenter2D.Name(rm.Method.Network), parameters = rm.Method.Parameters, size = r.GetValue(size), labeled = lab, unlabeled = unl,
                    data = man?.Name, threads = rm.Threads, medianSeconds = rm.Seconds, passes = rm.Passes, secondsPerPass = rm.Seconds / rm.Passes.Values.Sum(),
                    dataWaitSeconds = rm.DataWaitSeconds, warmup = r.GetValue(warmup), iterationSeconds = rm.IterationSeconds,
                }).ToArray());
                return 0;
            }
            if (r.GetValue(volumeTrain) is string vm)
            {
                var p = MetricOptions.ParseTriple(r.GetValue(volumePatch), "--patch")!;
                var lu = r.GetValue(volumeBatch)!.Split(',').Select(v => int.TryParse(v, out var n) && n >= 0 ? n : throw new ArgumentException($"--volume-batch '{r.GetValue(volumeBatch)}': expected labeled,unlabeled")).ToArray();
                if (lu.Length != 2 || lu[0] < 1) throw new ArgumentException($"--volume-batch '{r.GetValue(volumeBatch)}': expected labeled,unlabeled with at least 1 labeled");
                var parameters = new Dictionary<string, string>();
                if (vm == "bcp") parameters["pretrain_iterations"] = "0";
                var res3 = Benchmark.VolumeStep(vm, (p[0], p[1], p[2]), lu[0], lu[1], r.GetValue(iters), r.GetValue(warmup), r.GetValue(threads), parameters: parameters, device: device,
                    channelsLast: channelsLast);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"semiseg 3D {vm} (VNet, {(channelsLast ? "channels_last_3d" : "contiguous")}) patch {p[0]}x{p[1]}x{p[2]} batch {lu[0]}+{lu[1]} device {Runtime.ComputeDevice.Describe(device)} threads {res3.threads}: median {res3.seconds:F2} s/iter; peak RSS {res3.peakRssMiB / 1024:F2} GiB; allocator {Runtime.TorchRuntime.AllocatorDescription}"));
                WriteJson(r.GetValue(json), new
                {
                    method = vm, network = "VNet", layout = channelsLast ? "channels_last_3d" : "contiguous", patch = p, labeled = lu[0], unlabeled = lu[1],
                    device = Runtime.ComputeDevice.Describe(device), threads = res3.threads, medianSeconds = res3.seconds, peakRssMiB = res3.peakRssMiB,
                    allocator = Runtime.TorchRuntime.AllocatorDescription,
                });
                return 0;
            }
            if (r.GetValue(volume) is string dims)
            {
                var d = dims.Split(',').Select(v => int.TryParse(v, out var n) && n > 0 ? n : throw new ArgumentException($"--sliding-window '{dims}': expected D,H,W (positive integers)")).ToArray();
                if (d.Length != 3) throw new ArgumentException($"--sliding-window '{dims}': expected D,H,W");
                var sw3 = Benchmark.SlidingWindow3D((d[0], d[1], d[2]), r.GetValue(iters), r.GetValue(threads), device);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"semiseg VNet sliding window, volume {dims} (D,H,W), patch 80x112x112, strides 4/18/18: {sw3.windows} windows, median {sw3.seconds:F2} s/volume = {1 / sw3.seconds:F3} volumes/s ({sw3.windows / sw3.seconds:F2} windows/s), threads {sw3.threads}; peak RSS {Benchmark.PeakRssMiB():F0} MiB"));
                WriteJson(r.GetValue(json), new
                {
                    volume = d, patch = new[] { 80, 112, 112 }, strides = new[] { 4, 18, 18 }, windows = sw3.windows, medianSecondsPerVolume = sw3.seconds,
                    threads = sw3.threads, peakRssMiB = Benchmark.PeakRssMiB(),
                });
                return 0;
            }
            Data.DatasetManifest? manifest = null;
            string? tmp = null;
            if (r.GetValue(data) is string src)
            {
                if (src == "phantom")
                {
                    tmp = Path.Combine(Path.GetTempPath(), $"semiseg-bench-{Guid.NewGuid():N}");
                    Data.CardiacPhantom.WriteDataset(tmp, labeled: 6, unlabeled: 12, val: 0, test: 0, depth: 8, size: r.GetValue(size));
                    manifest = Data.CustomDataset.Load(tmp, 4);
                }
                else manifest = Data.DatasetDetection.IsAcdc(src) ? Data.AcdcDataset.Load(src, 7) : Data.CustomDataset.Load(src, 4);
            }
            BenchResult res;
            try
            {
                res = Benchmark.Run(r.GetValue(mode)!, r.GetValue(size), r.GetValue(batch), r.GetValue(iters), r.GetValue(warmup), r.GetValue(threads),
                    channelsLast, Console.WriteLine, manifest, inplaceActivations: !r.GetValue(plain), device: device);
            }
            finally { if (tmp != null) Directory.Delete(tmp, true); }
            var ci = CultureInfo.InvariantCulture;
            Console.WriteLine(string.Create(ci, $"semiseg {res.Mode} ({(r.GetValue(plain) ? "plain: contiguous, out-of-place activations" : r.GetValue(layout))}) size {res.Size} batch {res.Batch} device {Runtime.ComputeDevice.Describe(device)} threads {res.Threads}: median {res.MedianSeconds:F3} s/iter"));
            Console.WriteLine(string.Create(ci, $"  {res.GFlopPerIteration:F1} GFLOP/iter -> {res.AchievedGFlops:F1} GFLOP/s = {100 * res.AchievedGFlops / res.GemmPeakGFlops:F0}% of measured GEMM peak {res.GemmPeakGFlops:F1} GFLOP/s"));
            if (!double.IsNaN(res.ConvolutionSeconds))
                Console.WriteLine(string.Create(ci, $"  its convolutions alone (conv2d forward and backward on the same shapes and layout, nothing else): {res.ConvolutionSeconds:F3} s/iter = {100 * res.ConvolutionSeconds / res.MedianSeconds:F0}% of the iteration, {res.GFlopPerIteration / res.ConvolutionSeconds:F1} GFLOP/s"));
            Console.WriteLine(string.Create(ci, $"  peak RSS {res.PeakRssMiB:F0} MiB; RSS {res.RssFirstMiB:F0} MiB after the first timed iteration, {res.RssLastMiB:F0} MiB after the last"));
            Console.WriteLine($"  allocator: {Runtime.TorchRuntime.AllocatorDescription}");
            Console.WriteLine(string.Create(ci, $"  data: {res.DataSource}; waited {1000 * res.DataWaitPerIteration:F1} ms per iteration ({100 * res.DataWaitFraction:F2}% of the iteration)"));
            Console.WriteLine(string.Create(ci, $"  inference {res.InferenceSlicesPerSecond:F1} slices/s at {res.Size}x{res.Size} (batch of 16, no autograd)"));
            WriteJson(r.GetValue(json), res);
            return 0;
        });
        return cmd;
    }

    /// <summary>--json: the result, written atomically (nothing when the option is absent). A figure that was not
    /// measured is NaN (e.g. the convolutions alone off the CPU) and is written as "NaN", which Python's json reads.</summary>
    static void WriteJson(string? path, object result)
    {
        if (path is null) return;
        var options = new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };
        Data.AtomicFile.WriteAllText(path, JsonSerializer.Serialize(result, options));
    }

    /// <summary>One --method entry: a method name, optionally @network (e.g. supervised@resunet); --network otherwise.
    /// The methods with a labeled-only first stage are timed in their second stage, which is what runs most.</summary>
    static Benchmark.MethodUnderTest MethodSpec(string entry, string defaultNetwork)
    {
        var parts = entry.Split('@');
        if (parts.Length > 2) throw new ArgumentException($"--method '{entry}': expected METHOD or METHOD@NETWORK");
        string net = parts.Length == 2 ? parts[1] : defaultNetwork;
        if (!Models.Segmenter2D.TryParse(net, out var kind)) throw new ArgumentException($"--method '{entry}': network '{net}': expected unet, resunet, resnet18-unet or resnet34-unet");
        var prm = new Dictionary<string, string>();
        if (parts[0] is "bcp" or "action" or "m3hl") prm["pretrain_iterations"] = "0";
        return new Benchmark.MethodUnderTest(parts[0], kind, prm);
    }
}
