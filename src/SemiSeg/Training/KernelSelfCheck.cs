using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Training;

/// <summary>
/// A short start-up check of the convolution kernels this machine will train with (issue 15: on some AVX-512 CPUs
/// oneDNN's convolution backward raced and read unset memory, giving wrong gradients and NaN at 2 threads). A small
/// UNet2D (both memory layouts) or VNet, at the run's thread count, does one backward twice: the two must agree bit for
/// bit, be finite, and agree with the float64 network within <see cref="GradientCheck.Bound"/>. Where they do not,
/// the narrow output convolutions (the shape class seen to fail) are padded to 16 channels and the check repeats; where
/// that is not enough, convolutions leave oneDNN for libtorch's reference kernels. One line says what was found and
/// chosen. The outcome is kept per thread count and dimension for the process. SEMISEG_SELF_CHECK=0 skips it;
/// SEMISEG_ONEDNN=0 starts on the reference kernels.
/// </summary>
public static class KernelSelfCheck
{
    static readonly Dictionary<(int threads, bool volume), string> Done = new();
    static readonly object Sync = new();

    /// <summary>Runs the check once per (thread count, 2D/3D) and returns its one-line report.</summary>
    public static string Ensure(bool volume)
    {
        lock (Sync)
        {
            int threads = get_num_threads();
            if (Done.TryGetValue((threads, volume), out var known)) return known;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            string line = Run(volume, threads) + $" ({clock.Elapsed.TotalSeconds:F1} s)";
            // the probes' tensors are disposed by now; their memory goes back to the system rather than staying in the
            // tuned heap for the whole run (~120 MB at 2D). No waiting for finalizers: a training's gate is parked here.
            TorchRuntime.ReleaseFreeMemory();
            Done[(threads, volume)] = line;
            return line;
        }
    }

    static string Run(bool volume, int threads)
    {
        if (Environment.GetEnvironmentVariable("SEMISEG_ONEDNN") == "0" && TorchRuntime.OneDnn == true)
        {
            TorchRuntime.OneDnn = false;
            return "kernel self-check: SEMISEG_ONEDNN=0, convolutions run on libtorch's reference kernels";
        }
        if (Environment.GetEnvironmentVariable("SEMISEG_SELF_CHECK") == "0") return "kernel self-check: skipped (SEMISEG_SELF_CHECK=0)";
        string where = $"{(volume ? "VNet NCDHW and channels_last_3d" : "UNet2D NCHW and channels_last")}, {threads} thread{(threads == 1 ? "" : "s")}";
        var first = Probe(volume);
        if (first is null) return $"kernel self-check ({where}): gradients repeat bit for bit and match float64; keeping {Backend()}";
        NarrowOutputs.Pad = true;
        var second = Probe(volume);
        if (second is null)
            return $"kernel self-check ({where}): {first}; with the narrow output convolutions padded to 16 channels they agree: keeping {Backend()} for the rest";
        if (TorchRuntime.OneDnn == true)
        {
            TorchRuntime.OneDnn = false;
            var third = Probe(volume);
            if (third is null)
                return $"kernel self-check ({where}): {first}; oneDNN still disagreed with padded outputs ({second}): convolutions now run on libtorch's reference kernels (correct, slower)";
            throw new InvalidOperationException($"kernel self-check ({where}): {first}; libtorch's reference kernels disagree too ({third}): this machine does not compute correct gradients");
        }
        throw new InvalidOperationException($"kernel self-check ({where}): {first}; padded outputs: {second}");
    }

    static string Backend() => TorchRuntime.OneDnn == false ? "libtorch's reference kernels" : "oneDNN";

    /// <summary>Null when the kernels pass; otherwise what went wrong.</summary>
    static string? Probe(bool volume)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(15);
        if (volume)
        {
            var x = randn(new long[] { 1, 1, 16, 32, 32 }, generator: gen);
            var y = randint(0, 2, new long[] { 1, 16, 32, 32 }, generator: gen);
            // both layouts: training runs channels_last_3d by default, --no-channels-last NCDHW
            foreach (bool cl in new[] { false, true })
            {
                using var net = new VNet(1, 2, dropout: false, inplace: false);
                if (cl) MemoryLayout.ToChannelsLast(net);
                if (Check(net, () => new VNet(1, 2, dropout: false, inplace: false), x, y, x, y, cl ? MemoryLayout.ToChannelsLast : null) is string problem)
                    return $"{(cl ? "channels_last_3d" : "NCDHW")}: {problem}";
            }
            return null;
        }
        var config = new UNetConfig { Dropout = new double[5], InplaceActivations = false };
        // float64 comparison on a small batch (the float64 kernels are slow); the repeat test on the configuration the
        // race was reported on (MemoryLayoutTests: batch 4 at 48x48)
        var xs = randn(new long[] { 2, 1, 32, 32 }, generator: gen);
        var ys = randint(0, 4, new long[] { 2, 32, 32 }, generator: gen);
        var xr = randn(new long[] { 4, 1, 48, 48 }, generator: gen);
        var yr = randint(0, 4, new long[] { 4, 48, 48 }, generator: gen);
        foreach (bool cl in new[] { false, true })
        {
            using var net = new UNet2D(config);
            if (cl) MemoryLayout.ToChannelsLast(net);
            if (Check(net, () => new UNet2D(config), xs, ys, xr, yr, cl ? MemoryLayout.ToChannelsLast : null) is string problem)
                return $"{(cl ? "channels_last" : "NCHW")}: {problem}";
        }
        return null;
    }

    static string? Check<TNet>(TNet net, Func<TNet> create, Tensor x, Tensor y, Tensor xRepeat, Tensor yRepeat, Func<Tensor, Tensor>? layout)
        where TNet : nn.Module<Tensor, Tensor>
    {
        Tensor Loss(Tensor logits, Tensor labels) => SegmentationLosses.CeDice(logits, labels);
        var r = GradientCheck.Compare(net, create, x, y, Loss, layout);
        if (!(r.Worst < GradientCheck.Bound)) return $"gradient of {r.WorstParameter} is {r.Worst:E1} away from float64 (bound {GradientCheck.Bound:E0})";
        // three passes: the reported race showed in most repetitions, not in every one
        using var input = layout?.Invoke(xRepeat) ?? xRepeat.alias();
        Tensor[]? first = null;
        for (int rep = 0; rep < 3; rep++)
        {
            foreach (var p in net.parameters()) p.grad = null;
            Loss(net.forward(input), yRepeat).backward();
            var grads = net.parameters().Select(p => p.grad!.clone()).ToArray();
            if (grads.Any(g => !g.isfinite().all().item<bool>())) return "a gradient is not finite";
            if (first is null) { first = grads; continue; }
            int differing = grads.Zip(first).Count(p => !p.First.eq(p.Second).all().item<bool>());
            if (differing > 0) return $"a repeated backward gave different gradients for {differing} of {grads.Length} parameters (a race)";
        }
        return null;
    }
}
