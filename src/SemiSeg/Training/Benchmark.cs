using System.Diagnostics;
using SemiSeg.Losses;
using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Training;

public sealed record BenchResult(string Mode, int Size, int Batch, double MedianSeconds, double[] Seconds, double GFlopPerIteration,
    double AchievedGFlops, double GemmPeakGFlops, double PeakRssMiB, double InferenceSlicesPerSecond, int Threads,
    double RssFirstMiB, double RssLastMiB, double DataWaitPerIteration, double DataWaitFraction, string DataSource, double ConvolutionSeconds);

/// <summary>
/// Times training iterations of the standard 2D UNet the way ../shared/bench/peer_mt.py does (same shapes, same
/// losses), with the project's own network and loss code: "mt" is one Mean-Teacher iteration (student on B, EMA
/// teacher on the unlabeled half with noise, 0.5·(CE+Dice) + 0.1·MSE consistency, SGD step, EMA update); "supervised"
/// is the supervised method's step on the whole batch. Also measures a GEMM peak, the time of the iteration's
/// convolutions alone (<see cref="ConvolutionFloorSeconds"/>), peak RSS and inference throughput.
/// </summary>
public static class Benchmark
{
    /// <summary>Forward FLOPs (multiply-add = 2) of the UNet for one image of size×size.</summary>
    public static double UNetForwardFlops(UNetConfig c, int size) => UNetLayers(c, size).Sum(l => l.Flops);

    /// <summary>Convolution FLOPs of the UNet's encoder (input block and the four down blocks) for one image.</summary>
    public static double UNetEncoderFlops(UNetConfig c, int size) => UNetLayers(c, size).Where(l => l.Encoder).Sum(l => l.Flops);

    /// <summary>Convolution FLOPs of the UNet's decoder (up blocks and output convolution) for one image.</summary>
    public static double UNetDecoderFlops(UNetConfig c, int size) => UNetLayers(c, size).Where(l => !l.Encoder).Sum(l => l.Flops);

    /// <summary>One convolution of the UNet: channels in and out, kernel size, input side (square), whether the
    /// iteration needs the gradient of its input (not for the first convolution, whose input is the image), whether
    /// it is in the encoder, and whether it is the transposed up convolution (kernel 2, stride 2).</summary>
    public sealed record ConvLayer(long In, long Out, long Kernel, long Side, bool InputGrad, bool Encoder = false, bool Transposed = false)
    {
        /// <summary>Forward FLOPs for one image (a transposed 2x2 stride-2 convolution: each input pixel to 4 outputs).</summary>
        public double Flops => 2.0 * In * Out * Kernel * Kernel * Side * Side;
    }

    /// <summary>The UNet's convolutions for one image of size×size in forward order, for either up path.</summary>
    static List<ConvLayer> UNetLayers(UNetConfig c, int size)
    {
        var f = c.Features; var layers = new List<ConvLayer>();
        var sides = new long[5];
        for (int i = 0; i < 5; i++) sides[i] = size >> i;
        layers.Add(new(c.InChannels, f[0], 3, sides[0], false, Encoder: true));
        layers.Add(new(f[0], f[0], 3, sides[0], true, Encoder: true));
        for (int i = 1; i < 5; i++)
        {
            layers.Add(new(f[i - 1], f[i], 3, sides[i], true, Encoder: true));
            layers.Add(new(f[i], f[i], 3, sides[i], true, Encoder: true));
        }
        for (int i = 4; i >= 1; i--)
        {
            layers.Add(c.Up == UpMode.Bilinear ? new(f[i], f[i - 1], 1, sides[i], true) : new(f[i], f[i - 1], 2, sides[i], true, Transposed: true));
            layers.Add(new(2 * f[i - 1], f[i - 1], 3, sides[i - 1], true));
            layers.Add(new(f[i - 1], f[i - 1], 3, sides[i - 1], true));
        }
        layers.Add(new(f[0], c.NumClasses, 3, sides[0], true));
        return layers;
    }

    /// <summary>The UNet's convolutions for one image of size×size, in forward order, as conv2d runs them (the bilinear
    /// up path; the list <see cref="UNetForwardFlops"/> counts). Null for other networks.</summary>
    public static IReadOnlyList<ConvLayer>? UNetConvolutions(UNetConfig c, int size) =>
        c.Kind == Net2DKind.Unet && c.Up == UpMode.Bilinear ? UNetLayers(c, size) : null;

    /// <summary>
    /// The floor under an iteration's time set by its convolutions alone: the UNet's convolutions run through the same
    /// libtorch call (conv2d, oneDNN) on random tensors of the iteration's shapes and layout, forward and backward
    /// (weight, bias and, past the first layer, input gradients) over <paramref name="trained"/> images and forward
    /// without autograd over <paramref name="forwardOnly"/> (Mean Teacher's teacher). Nothing else of the iteration
    /// runs: no batch norm, activation, pooling, upsampling, concatenation, loss or optimizer. Median of
    /// <paramref name="reps"/> after one warm-up; NaN for networks <see cref="UNetConvolutions"/> does not list.
    /// </summary>
    public static double ConvolutionFloorSeconds(UNetConfig c, int size, int trained, int forwardOnly, bool channelsLast = true, Device? device = null, int reps = 5)
    {
        var layers = UNetConvolutions(c, size);
        if (layers is null) return double.NaN;
        device ??= CPU;
        using var scope = NewDisposeScope();
        // every layer's input, output gradient and teacher input are views of three random buffers sized for the
        // largest layer (a few hundred MB at 256x256 batch 24, against ~2 GB for separate tensors), with the
        // iteration's strides
        Tensor Buffer(Func<ConvLayer, long> count) => randn(new[] { layers.Max(count) }, device: device);
        var inBuf = Buffer(l => Math.Max(trained, 1) * l.In * l.Side * l.Side);
        var gradBuf = Buffer(l => Math.Max(trained, 1) * l.Out * l.Side * l.Side);
        var fwdBuf = Buffer(l => Math.Max(forwardOnly, 1) * l.In * l.Side * l.Side);
        Tensor View(Tensor buf, long n, long ch, long side)
        {
            var shape = new[] { n, ch, side, side };
            return channelsLast ? buf.as_strided(shape, MemoryLayout.ChannelsLastStrides(shape)) : buf.narrow(0, 0, n * ch * side * side).view(shape);
        }
        Tensor Weight(ConvLayer l)
        {
            var w = randn(new[] { l.Out, l.In, l.Kernel, l.Kernel }, device: device);
            return channelsLast ? MemoryLayout.ToChannelsLast(w) : w;
        }
        var weights = layers.Select(l => (w: Weight(l).requires_grad_(), b: randn(new[] { l.Out }, device: device).requires_grad_())).ToArray();
        var trainIn = trained > 0 ? layers.Select(l => View(inBuf, trained, l.In, l.Side).detach().requires_grad_(l.InputGrad)).ToArray() : Array.Empty<Tensor>();
        var gradOut = trained > 0 ? layers.Select(l => View(gradBuf, trained, l.Out, l.Side)).ToArray() : Array.Empty<Tensor>();
        var fwdIn = forwardOnly > 0 ? layers.Select(l => View(fwdBuf, forwardOnly, l.In, l.Side)).ToArray() : Array.Empty<Tensor>();
        var times = new List<double>();
        for (int r = 0; r <= reps; r++)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < layers.Count; i++)
            {
                var (w, b) = weights[i];
                long pad = layers[i].Kernel / 2;
                if (trained > 0)
                {
                    using var inner = NewDisposeScope();
                    var y = functional.conv2d(trainIn[i], w, b, padding: new[] { pad, pad });
                    var inputs = layers[i].InputGrad ? new[] { trainIn[i], w, b } : new[] { w, b };
                    // autograd.grad, not backward: nothing accumulates into .grad between repetitions
                    torch.autograd.grad(new[] { y }, inputs, new[] { gradOut[i] });
                }
                if (forwardOnly > 0)
                {
                    using var inner = NewDisposeScope();
                    using var noGrad = no_grad();
                    functional.conv2d(fwdIn[i], w, b, padding: new[] { pad, pad });
                }
            }
            if (device.type == DeviceType.CUDA) cuda.synchronize(device);
            if (r > 0) times.Add(sw.Elapsed.TotalSeconds);
        }
        return Median(times);
    }

    public static double MeasureGemmPeakGFlops(int n = 2048, int reps = 5)
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n); var b = randn(n, n);
        using (var w = a.mm(b)) { }
        var times = new List<double>();
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            using var c = a.mm(b);
            times.Add(sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / times.Min() / 1e9;
    }

    /// <summary>The value of a /proc/self/status memory line, "VmHWM:\t  123 kB"; from 10 GB on no space follows the
    /// tab ("VmHWM:\t15450552 kB"), so both separate.</summary>
    public static double StatusKiB(string line) =>
        double.Parse(line.Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);

    public static double PeakRssMiB()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:")) return StatusKiB(line) / 1024.0;
        }
        catch (IOException) { }
        return Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;
    }

    /// <summary>Method settings that make <see cref="MeanTeacherMethod"/> compute exactly peer_mt.py's iteration:
    /// constant consistency weight 0.1 from the first iteration, unclamped N(0, 0.1²) teacher noise, EMA 0.99.</summary>
    public static MethodSettings PeerMeanTeacherSettings() => new(new Dictionary<string, string>
    {
        ["consistency"] = "0.1", ["rampup"] = "0", ["noise_std"] = "0.1", ["noise_clamp"] = "0", ["ema_decay"] = "0.99", ["consistency_start"] = "0",
    });

    /// <summary>Resident memory now (VmRSS), MiB.</summary>
    public static double RssMiB()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmRSS:")) return StatusKiB(line) / 1024.0;
        }
        catch (IOException) { }
        return Process.GetCurrentProcess().WorkingSet64 / 1048576.0;
    }

    /// <summary>
    /// Times <paramref name="iterations"/> iterations after <paramref name="warmup"/>. With <paramref name="data"/>,
    /// batches come from the real background loader (two streams, augmentation, resize) and the time the step waits
    /// for them is reported; otherwise a fixed random batch is reused, as peer_mt.py does.
    /// </summary>
    public static BenchResult Run(string mode, int size, int batch, int iterations, int warmup, int? threads, bool channelsLast = true,
        Action<string>? log = null, Data.DatasetManifest? data = null, bool inplaceActivations = true, Device? device = null)
    {
        device ??= CPU;
        Runtime.TorchRuntime.Configure(threads);
        log?.Invoke(KernelSelfCheck.Ensure(volume: false));
        Runtime.TorchRuntime.Seed(0);
        var cfg = new UNetConfig { InplaceActivations = inplaceActivations };
        ISegmentationMethod method = mode == "mt" ? new MeanTeacherMethod(cfg, PeerMeanTeacherSettings()) : new SupervisedMethod(cfg);
        using var _ = method;
        Runtime.ComputeDevice.Place(method.StatefulModules, device);
        if (channelsLast) foreach (var m in method.StatefulModules) MemoryLayout.ToChannelsLast(m);
        method.Train(true);
        int labeled = mode == "mt" ? batch / 2 : batch;
        using var opt = optim.SGD(method.TrainableModules.SelectMany(m => m.parameters()), 0.01, momentum: 0.9, weight_decay: 1e-4);
        // drawn on the host (the same numbers on every device), then moved
        using var x0 = randn(batch, 1, size, size).to(device);
        using var x = channelsLast ? MemoryLayout.ToChannelsLast(x0) : x0.alias();
        using var y = randint(0, 4, new long[] { labeled, size, size }).to_type(ScalarType.Int64).to(device);
        using var loader = OpenLoader(data, labeled, batch - labeled, size);
        var times = new List<double>();
        double rssFirst = 0, rssLast = 0, waitTimed = 0;
        using var gate = Runtime.FinalizerGuard.Enter();
        for (int it = 0; it < warmup + iterations; it++)
        {
            Runtime.FinalizerGuard.SafePoint();
            var sw = Stopwatch.StartNew();
            double waitBefore = loader?.WaitSeconds ?? 0;
            using (var scope = NewDisposeScope())
            {
                Tensor bx = x, by = y;
                if (loader != null)
                {
                    var uploaded = Upload(loader.Next(), device);
                    bx = channelsLast ? MemoryLayout.ToChannelsLast(uploaded.images) : uploaded.images;
                    by = uploaded.labels;
                }
                var step = Trainer.Step(method, opt, bx, by, labeled, new TrainingContext(it, 30000, 0.01));
                step.Loss.item<float>(); // the iteration is complete when its loss is known
            }
            double s = sw.Elapsed.TotalSeconds;
            if (it >= warmup)
            {
                times.Add(s);
                waitTimed += (loader?.WaitSeconds ?? 0) - waitBefore;
                rssLast = RssMiB();
                if (it == warmup) rssFirst = rssLast;
            }
            log?.Invoke($"iteration {it + 1}/{warmup + iterations}: {s:F3} s{(it < warmup ? " (warm-up)" : "")}, RSS {RssMiB():F0} MiB");
        }
        double median = Median(times);
        double fwd = UNetForwardFlops(cfg, size);
        double flops = mode == "mt" ? 3 * fwd * batch + fwd * (batch - labeled) : 3 * fwd * batch;
        // the training iterations' peak, read before the measurements below allocate their own tensors
        double peakRss = PeakRssMiB();
        double gemm = MeasureGemmPeakGFlops();
        double convolutions = ConvolutionFloorSeconds(cfg, size, batch, mode == "mt" ? batch - labeled : 0, channelsLast, device);
        double inference = InferenceThroughput(method.InferenceNetwork, size, channelsLast, device);
        return new BenchResult(mode, size, batch, median, times.ToArray(), flops / 1e9, flops / median / 1e9, gemm, peakRss, inference, torch.get_num_threads(),
            rssFirst, rssLast, waitTimed / times.Count, waitTimed / times.Sum(), data?.Name ?? "fixed random batch", convolutions);
    }

    /// <summary>3D inference throughput: the LA protocol's sliding window (VNet, patch 80x112x112, strides 4/18/18) over
    /// a random volume; median seconds per volume over <paramref name="reps"/> runs after one warm-up.</summary>
    public static (double seconds, int windows, int threads) SlidingWindow3D((int d, int h, int w) volume, int reps = 3, int? threads = null, Device? device = null)
    {
        Runtime.TorchRuntime.Configure(threads);
        using var net = new VNet(1, 2);
        Runtime.ComputeDevice.Place(new[] { net }, device ?? CPU);
        var rng = new Random(0);
        var vol = new float[volume.d * volume.h * volume.w];
        for (int i = 0; i < vol.Length; i++) vol[i] = (float)(rng.NextDouble() * 2 - 1);
        var times = new List<double>(); int windows = 0;
        using (Runtime.FinalizerGuard.Enter())
        for (int i = 0; i <= Math.Max(1, reps); i++)
        {
            Runtime.FinalizerGuard.SafePoint();
            var sw = Stopwatch.StartNew();
            windows = Inference.SlidingWindowInferer.Predict(net, vol, volume.d, volume.h, volume.w, 2, (80, 112, 112), (4, 18, 18)).Windows;
            if (i > 0) times.Add(sw.Elapsed.TotalSeconds);
        }
        return (Median(times), windows, torch.get_num_threads());
    }

    /// <summary>
    /// One 3D training iteration of a volume method (VNet by default) on a fixed random batch of
    /// <paramref name="labeled"/> + <paramref name="unlabeled"/> patches: median seconds over <paramref name="iterations"/>
    /// after <paramref name="warmup"/>, and the process's peak resident memory (run one method per process to read
    /// its own peak). The LA setting is patch (80, 112, 112), batch 2 + 2; channels_last_3d unless
    /// <paramref name="channelsLast"/> is off, as training runs.
    /// </summary>
    public static (double seconds, double peakRssMiB, int threads) VolumeStep(string method, (int d, int h, int w) patch, int labeled, int unlabeled,
        int iterations = 2, int warmup = 1, int? threads = null, Net3DConfig? network = null, IReadOnlyDictionary<string, string>? parameters = null, Device? device = null,
        bool channelsLast = true)
    {
        device ??= CPU;
        Runtime.TorchRuntime.Configure(threads);
        KernelSelfCheck.Ensure(volume: true);
        Runtime.TorchRuntime.Seed(0);
        var settings = new MethodSettings(parameters ?? new Dictionary<string, string>());
        using var m = Methods.MethodRegistry.GetVolume(method).Create(new Methods.Volume.VolumeMethodContext(network ?? new Net3DConfig(), new UNetConfig { NumClasses = 2 }, settings));
        settings.EnsureAllUsed(method);
        Runtime.ComputeDevice.Place(m.StatefulModules, device);
        if (channelsLast) foreach (var mod in m.StatefulModules) MemoryLayout.ToChannelsLast(mod);
        using var opt = torch.optim.SGD(m.TrainableModules.SelectMany(x => x.parameters()), 0.01, momentum: 0.9, weight_decay: 1e-4);
        m.Train(true);
        using var x0 = randn(new long[] { labeled + unlabeled, 1, patch.d, patch.h, patch.w }).to(device);
        using var x = channelsLast ? MemoryLayout.ToChannelsLast(x0) : x0.alias();
        using var y = (x0.narrow(0, 0, labeled)[.., 0] > 0.5).to_type(ScalarType.Int64);
        var times = new List<double>();
        for (int i = 0; i < warmup + iterations; i++)
        {
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            // a late iteration: consistency weights ramped up, BCP past its pre-training, M&N's unlabeled share in use
            Trainer.Step(m, opt, x, y, labeled, new Methods.TrainingContext(1_000_000 + i, 1_000_010, 0.01)).Loss.item<float>();
            if (i >= warmup) times.Add(sw.Elapsed.TotalSeconds);
        }
        return (Median(times), PeakRssMiB(), torch.get_num_threads());
    }

    /// <summary>
    /// One training iteration of a 2D method at the table's setting (UNet, channels_last as training runs it) on
    /// <paramref name="labeled"/> + <paramref name="unlabeled"/> slices of <paramref name="size"/>², fed either a fixed
    /// random batch or the real loader over <paramref name="data"/>: median seconds after <paramref name="warmup"/>,
    /// and the iteration's network passes per 2D network class, in units of one forward over the whole batch, counted
    /// (not assumed) at every network's encoder and output convolution: an image with autograd on counts 3 (forward
    /// and a backward of about twice its cost), without autograd 1. seconds ÷ passes is the method's cost per pass, to
    /// compare with Mean Teacher's (host work shows there). A late iteration: ramps done, BCP, ACTION and M3HL in
    /// their second stage. Passes are NaN where the output convolutions run padded (<see cref="NarrowOutputs.Pad"/>),
    /// which the count cannot see.
    /// </summary>
    public static (double seconds, IReadOnlyDictionary<string, double> passes, double dataWaitSeconds, int threads) MethodStep2D(string method, int size, int labeled, int unlabeled,
        int iterations = 5, int warmup = 2, int? threads = null, Data.DatasetManifest? data = null, IReadOnlyDictionary<string, string>? parameters = null, Device? device = null,
        Net2DKind network = Net2DKind.Unet)
    {
        var r = MethodSteps2D(new[] { new MethodUnderTest(method, network, parameters) }, size, labeled, unlabeled, iterations, warmup, threads, data, device)[0];
        return (r.Seconds, r.Passes, r.DataWaitSeconds, r.Threads);
    }

    /// <summary>A method to time: its name, its 2D network, its settings.</summary>
    public sealed record MethodUnderTest(string Method, Net2DKind Network = Net2DKind.Unet, IReadOnlyDictionary<string, string>? Parameters = null);

    /// <summary>One method's figures from <see cref="MethodSteps2D"/>: the median of <paramref name="IterationSeconds"/>,
    /// every timed iteration in order (their spread over a run shows whether the machine stayed steady).</summary>
    public sealed record MethodTiming(MethodUnderTest Method, double Seconds, IReadOnlyDictionary<string, double> Passes, double DataWaitSeconds, int Threads,
        IReadOnlyList<double> IterationSeconds);

    /// <summary>
    /// <see cref="MethodStep2D"/> for several methods in one process, their iterations interleaved (iteration i of
    /// every method, then i + 1 of every method), all on the same batch of each round. Separate processes of the same
    /// method on this 2-core VM differ by 15-25% in their medians, as much as the margins of a per-pass ratio; within
    /// one process, interleaved, every method meets the same machine state, so the ratio of two methods' medians
    /// is what the comparison needs. A round's batch is fetched (and uploaded) before the methods' timed steps: the
    /// loader's wait is reported apart, not in any method's time.
    /// </summary>
    public static IReadOnlyList<MethodTiming> MethodSteps2D(IReadOnlyList<MethodUnderTest> methods, int size, int labeled, int unlabeled,
        int iterations = 5, int warmup = 2, int? threads = null, Data.DatasetManifest? data = null, Device? device = null)
    {
        if (methods.Count == 0) throw new ArgumentException("no method to time");
        device ??= CPU;
        Runtime.TorchRuntime.Configure(threads);
        KernelSelfCheck.Ensure(volume: false);
        Runtime.TorchRuntime.Seed(0);
        int numClasses = data?.NumClasses ?? 4;
        var runs = new List<TimedMethod>();
        try
        {
            foreach (var spec in methods) runs.Add(new TimedMethod(spec, numClasses, size, device));
            int batch = labeled + unlabeled;
            using var x0 = randn(batch, 1, size, size).to(device);
            using var y0 = randint(0, numClasses, new long[] { labeled, size, size }).to_type(ScalarType.Int64).to(device);
            // meta-labels of the fixed batch for the methods that read them (meta-contrast): two patients, two phases
            IReadOnlyList<Data.MetaLabels> meta0 = Enumerable.Range(0, batch).Select(i => new Data.MetaLabels($"p{i % 2}", i % 4 < 2 ? "ED" : "ES", i, batch)).ToArray();
            using var loader = OpenLoader(data, labeled, unlabeled, size);
            double waitStart = 0;
            using var gate = Runtime.FinalizerGuard.Enter();
            for (int it = 0; it < warmup + iterations; it++)
            {
                Runtime.FinalizerGuard.SafePoint();
                if (it == warmup)
                {
                    // the counts and the wait cover the timed iterations only
                    foreach (var run in runs) run.ResetCounts();
                    waitStart = loader?.WaitSeconds ?? 0;
                }
                using var scope = NewDisposeScope();
                var (bx, by, meta) = loader is null ? (x0, y0, meta0) : Upload(loader.Next(), device);
                var images = MemoryLayout.ToChannelsLast(bx);
                foreach (var run in runs) run.Step(images, by, meta, labeled, it, it >= warmup);
            }
            double wait = ((loader?.WaitSeconds ?? 0) - waitStart) / iterations;
            return runs.Select(run => new MethodTiming(run.Spec, Median(run.Times), run.Passes(iterations, batch), wait, get_num_threads(), run.Times.ToArray())).ToArray();
        }
        finally { foreach (var run in runs) run.Dispose(); }
    }

    /// <summary>A method with its optimizer and its pass counters, stepped by <see cref="MethodSteps2D"/>.</summary>
    sealed class TimedMethod : IDisposable
    {
        readonly ISegmentationMethod _method;
        readonly TorchSharp.Modules.SGD _opt;
        // per network class (a two-network method may pair the UNet with a costlier one: C3S3 and MEDL, ResUNet2D):
        // images through the encoder (Encode) and through the decoder (the output convolution) are counted apart and
        // weighed by the encoder's share of the network's FLOPs, so encoder-only passes (meta-contrast's contrast) and
        // decoder-only ones (UniMatch's feature-perturbed pass) count for what they cost. The UNet's share is computed;
        // other networks get ½, which matters only where their two counts differ.
        readonly Dictionary<string, double> _encoded = new(), _decoded = new(), _share = new();
        readonly List<Action> _removers = new();

        public MethodUnderTest Spec { get; }
        public List<double> Times { get; } = new();

        public TimedMethod(MethodUnderTest spec, int numClasses, int size, Device device)
        {
            Spec = spec;
            var settings = new MethodSettings(spec.Parameters ?? new Dictionary<string, string>());
            _method = MethodRegistry.Get(spec.Method).Create(new UNetConfig { NumClasses = numClasses, Kind = spec.Network }, settings);
            try { settings.EnsureAllUsed(spec.Method); }
            catch { _method.Dispose(); throw; }
            Runtime.ComputeDevice.Place(_method.StatefulModules, device);
            foreach (var mod in _method.StatefulModules) MemoryLayout.ToChannelsLast(mod);
            _opt = optim.SGD(_method.TrainableModules.SelectMany(x => x.parameters()), 0.01, momentum: 0.9, weight_decay: 1e-4);
            _method.Train(true);
            foreach (var net in _method.StatefulModules.OfType<Segmenter2D>())
            {
                string kind = net.GetType().Name;
                _encoded.TryAdd(kind, 0); _decoded.TryAdd(kind, 0);
                _share[kind] = net is UNet2D ? UNetEncoderFlops(net.Config, size) / UNetForwardFlops(net.Config, size) : 0.5;
                net.EncodeObserver = x => _encoded[kind] += x.shape[0] * (is_grad_enabled() ? 3 : 1);
                _removers.Add(() => net.EncodeObserver = null);
                _removers.Add(net.OutputConv.register_forward_hook((_, x, y) => { _decoded[kind] += x.shape[0] * (is_grad_enabled() ? 3 : 1); return y; }).remove);
            }
        }

        public void ResetCounts() { foreach (var k in _share.Keys) { _encoded[k] = 0; _decoded[k] = 0; } }

        public void Step(Tensor images, Tensor labels, IReadOnlyList<Data.MetaLabels> meta, int labeled, int iteration, bool timed)
        {
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
                Trainer.Step(_method, _opt, images, labels, labeled, new TrainingContext(20_000 + iteration, 30_000, 0.01) { Meta = meta }).Loss.item<float>();
            if (timed) Times.Add(sw.Elapsed.TotalSeconds);
        }

        public IReadOnlyDictionary<string, double> Passes(int iterations, int batch) => _share.Keys.ToDictionary(k => k, k => NarrowOutputs.Pad ? double.NaN
            : (_share[k] * _encoded[k] + (1 - _share[k]) * _decoded[k]) / iterations / batch);

        public void Dispose()
        {
            foreach (var r in _removers) r();
            _opt.Dispose();
            _method.Dispose();
        }
    }

    /// <summary>The real loader over <paramref name="data"/> as training feeds it (two streams, augmentation at
    /// <paramref name="size"/>), or null for a fixed random batch.</summary>
    static Data.BatchLoader? OpenLoader(Data.DatasetManifest? data, int labeled, int unlabeled, int size)
    {
        if (data is null) return null;
        var sampler = new Data.TwoStreamBatchSampler(data.Labeled.Count, data.Unlabeled.Count, labeled, unlabeled, 1337);
        return new Data.BatchLoader(data.Labeled, data.Unlabeled, sampler, new Data.SliceAugmenter(size, size), new Data.CaseCache(data.NumClasses), 1337);
    }

    /// <summary>A loader batch on the device: images (N, 1, H, W), labels of its labeled part, and its meta-labels.</summary>
    static (Tensor images, Tensor labels, IReadOnlyList<Data.MetaLabels> meta) Upload(Data.Batch b, Device device) =>
        (Runtime.ComputeDevice.Upload(b.Images, new long[] { b.Count, 1, b.Height, b.Width }, device),
         Runtime.ComputeDevice.Upload(b.Labels, new long[] { b.LabeledCount, b.Height, b.Width }, device),
         b.Items.Select(i => i.Meta).ToArray());

    /// <summary>The median as Python's statistics.median (the peers' figure): the mean of the middle two for an even count.</summary>
    public static double Median(IReadOnlyCollection<double> values)
    {
        var sorted = values.OrderBy(t => t).ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : 0.5 * (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]);
    }

    static double InferenceThroughput(Segmenter2D net, int size, bool channelsLast, Device device, int slices = 16, int reps = 3)
    {
        net.eval();
        using var noGrad = no_grad();
        using var x0 = randn(slices, 1, size, size).to(device);
        using var x = channelsLast ? MemoryLayout.ToChannelsLast(x0) : x0.alias();
        using (var w = net.forward(x)) { }
        var best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            using var o = ClassIndex.Of(net.forward(x));
            if (device.type == DeviceType.CUDA) cuda.synchronize(device); // kernels run asynchronously
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        net.train();
        return slices / best;
    }
}
