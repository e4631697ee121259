using System.Diagnostics;
using SemiSeg.Losses;
using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Training;

public sealed record BenchResult(string Mode, int Size, int Batch, double MedianSeconds, double[] Seconds, double GFlopPerIteration,
    double AchievedGFlops, double GemmPeakGFlops, double PeakRssMiB, double InferenceSlicesPerSecond, int Threads);

/// <summary>
/// Times training iterations of the standard 2D UNet the way ../shared/bench/peer_mt.py does (same shapes, same
/// losses), with the project's own network and loss code: "mt" is one Mean-Teacher iteration (student on B, EMA
/// teacher on the unlabeled half with noise, 0.5·(CE+Dice) + 0.1·MSE consistency, SGD step, EMA update); "supervised"
/// is the supervised method's step on the whole batch. Also measures a GEMM peak, peak RSS and inference throughput.
/// </summary>
public static class Benchmark
{
    /// <summary>Forward FLOPs (multiply-add = 2) of the UNet for one image of size×size.</summary>
    public static double UNetForwardFlops(UNetConfig c, int size)
    {
        var f = c.Features; double total = 0; long s = size;
        double Conv(long cin, long cout, long k, long hw) => 2.0 * cin * cout * k * k * hw;
        var sizes = new long[5];
        for (int i = 0; i < 5; i++) { sizes[i] = s; s /= 2; }
        total += Conv(c.InChannels, f[0], 3, sizes[0] * sizes[0]) + Conv(f[0], f[0], 3, sizes[0] * sizes[0]);
        for (int i = 1; i < 5; i++) total += Conv(f[i - 1], f[i], 3, sizes[i] * sizes[i]) + Conv(f[i], f[i], 3, sizes[i] * sizes[i]);
        for (int i = 4; i >= 1; i--)
        {
            long hw = sizes[i - 1] * sizes[i - 1];
            total += c.Up == UpMode.Bilinear ? Conv(f[i], f[i - 1], 1, sizes[i] * sizes[i]) : 2.0 * f[i] * f[i - 1] * 4 * sizes[i] * sizes[i];
            total += Conv(2 * f[i - 1], f[i - 1], 3, hw) + Conv(f[i - 1], f[i - 1], 3, hw);
        }
        total += Conv(f[0], c.NumClasses, 3, sizes[0] * sizes[0]);
        return total;
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

    public static double PeakRssMiB()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:")) return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        }
        catch (IOException) { }
        return Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;
    }

    public static BenchResult Run(string mode, int size, int batch, int iterations, int warmup, int? threads, Action<string>? log = null)
    {
        Runtime.TorchRuntime.Configure(threads);
        Runtime.TorchRuntime.Seed(0);
        var cfg = new UNetConfig();
        int half = batch / 2;
        using var student = new UNet2D(cfg);
        using var teacher = new UNet2D(cfg);
        teacher.load_state_dict(student.state_dict());
        foreach (var p in teacher.parameters()) p.requires_grad_(false);
        var studentParams = student.parameters().ToArray();
        var teacherParams = teacher.parameters().ToArray();
        using var opt = optim.SGD(studentParams, 0.01, momentum: 0.9, weight_decay: 1e-4);
        using var x = randn(batch, 1, size, size);
        using var y = randint(0, 4, new long[] { mode == "mt" ? half : batch, size, size }).to_type(ScalarType.Int64);
        var times = new List<double>();
        for (int it = 0; it < warmup + iterations; it++)
        {
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                Tensor loss;
                if (mode == "mt")
                {
                    var logits = student.forward(x);
                    var sm = functional.softmax(logits, 1);
                    Tensor tout;
                    using (no_grad())
                    {
                        var xu = x.narrow(0, half, batch - half);
                        tout = functional.softmax(teacher.forward(xu + 0.1 * randn_like(xu)), 1);
                    }
                    var sup = 0.5 * (SegmentationLosses.CrossEntropy(logits.narrow(0, 0, half), y) + SegmentationLosses.Dice(sm.narrow(0, 0, half), y));
                    loss = sup + 0.1 * functional.mse_loss(sm.narrow(0, half, batch - half), tout);
                }
                else
                {
                    loss = SegmentationLosses.CeDice(student.forward(x), y);
                }
                opt.zero_grad();
                loss.backward();
                opt.step();
                if (mode == "mt")
                    using (no_grad())
                        for (int i = 0; i < teacherParams.Length; i++) teacherParams[i].mul_(0.99).add_(studentParams[i], alpha: 0.01);
            }
            double s = sw.Elapsed.TotalSeconds;
            if (it >= warmup) times.Add(s);
            log?.Invoke($"iteration {it + 1}/{warmup + iterations}: {s:F3} s{(it < warmup ? " (warm-up)" : "")}");
        }
        var sorted = times.OrderBy(t => t).ToArray();
        double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : 0.5 * (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]);
        double fwd = UNetForwardFlops(cfg, size);
        double flops = mode == "mt" ? 3 * fwd * batch + fwd * half : 3 * fwd * batch;
        double gemm = MeasureGemmPeakGFlops();
        double inference = InferenceThroughput(student, size);
        return new BenchResult(mode, size, batch, median, times.ToArray(), flops / 1e9, flops / median / 1e9, gemm, PeakRssMiB(), inference, torch.get_num_threads());
    }

    static double InferenceThroughput(UNet2D net, int size, int slices = 16, int reps = 3)
    {
        net.eval();
        using var noGrad = no_grad();
        using var x = randn(slices, 1, size, size);
        using (var w = net.forward(x)) { }
        var best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            using var o = net.forward(x).argmax(1);
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        net.train();
        return slices / best;
    }
}
