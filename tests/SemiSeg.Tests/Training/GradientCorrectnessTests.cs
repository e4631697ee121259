using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Training;

/// <summary>
/// The float32 gradients of the real networks, as training computes them (libtorch's oneDNN kernels, both memory
/// layouts, 1 and 2 threads), agree with the same network in float64 within <see cref="GradientCheck.Bound"/> (derived
/// there), and repeat bit for bit. Issue 15: on some AVX-512 CPUs oneDNN's convolution backward raced and read garbage
/// (wrong gradients, NaN at times); this is the test that would have caught it.
/// </summary>
public class GradientCorrectnessTests
{
    readonly ITestOutputHelper _out;
    public GradientCorrectnessTests(ITestOutputHelper output) => _out = output;

    static readonly UNetConfig Plain = new() { Dropout = new double[5], InplaceActivations = false };

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(1, true)]
    [InlineData(2, true)]
    public void UNet2DGradientsMatchFloat64(int threads, bool channelsLast)
    {
        AtThreads(threads, () =>
        {
            KernelSelfCheck.Ensure(volume: false); // the kernels a run at this thread count would train with
            using var gen = new Generator(4);
            using var net = new UNet2D(Plain);
            Reinitialise(net, 4);
            if (channelsLast) MemoryLayout.ToChannelsLast(net);
            using var x = randn(new long[] { 4, 1, 48, 48 }, generator: gen);
            using var y = randint(0, 4, new long[] { 4, 48, 48 }, generator: gen);
            var r = GradientCheck.Compare(net, () => new UNet2D(Plain), x, y, (logits, labels) => SegmentationLosses.CeDice(logits, labels),
                channelsLast ? MemoryLayout.ToChannelsLast : null);
            _out.WriteLine($"threads {threads} channels_last {channelsLast}: worst relative error {r.Worst:E2} ({r.WorstParameter}); " + string.Join(" ", r.Errors.OrderByDescending(e => e.Value).Take(6).Select(e => $"{e.Key}:{e.Value:E1}")));
            Assert.True(r.Worst < GradientCheck.Bound, $"{r.WorstParameter}: relative error {r.Worst:E2} >= {GradientCheck.Bound}");
        });
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void VNetGradientsMatchFloat64(int threads)
    {
        AtThreads(threads, () =>
        {
            KernelSelfCheck.Ensure(volume: true);
            using var gen = new Generator(5);
            using var net = new VNet(1, 2, dropout: false);
            Reinitialise(net, 5);
            using var x = randn(new long[] { 2, 1, 16, 32, 32 }, generator: gen);
            using var y = randint(0, 2, new long[] { 2, 16, 32, 32 }, generator: gen);
            var r = GradientCheck.Compare(net, () => new VNet(1, 2, dropout: false), x, y, (logits, labels) => SegmentationLosses.CeDice(logits, labels));
            _out.WriteLine($"threads {threads}: worst relative error {r.Worst:E2} ({r.WorstParameter})");
            Assert.True(r.Worst < GradientCheck.Bound, $"{r.WorstParameter}: relative error {r.Worst:E2} >= {GradientCheck.Bound}");
        });
    }

    /// <summary>The same backward, repeated in one process at 2 threads (where the race showed), gives the same
    /// gradients bit for bit: every parameter, not a sum.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void UNet2DBackwardRepeatsBitForBit(bool channelsLast)
    {
        AtThreads(2, () =>
        {
            KernelSelfCheck.Ensure(volume: false);
            using var gen = new Generator(4);
            using var net = new UNet2D(Plain);
            Reinitialise(net, 4);
            if (channelsLast) MemoryLayout.ToChannelsLast(net);
            using var x0 = randn(new long[] { 4, 1, 48, 48 }, generator: gen);
            using var x = channelsLast ? MemoryLayout.ToChannelsLast(x0) : x0.alias();
            using var y = randint(0, 4, new long[] { 4, 48, 48 }, generator: gen);
            Tensor[]? first = null;
            for (int rep = 0; rep < 4; rep++)
            {
                foreach (var p in net.parameters()) p.grad = null;
                // BatchNorm's running statistics move with every pass but do not enter the training-mode forward
                SegmentationLosses.CeDice(net.forward(x), y).backward();
                var grads = net.parameters().Select(p => p.grad!.clone()).ToArray();
                Assert.All(grads, g => Assert.True(g.isfinite().all().item<bool>(), "non-finite gradient"));
                if (first is null) { first = grads; continue; }
                for (int i = 0; i < grads.Length; i++)
                    Assert.True(grads[i].eq(first[i]).all().item<bool>(), $"repetition {rep}: gradient of parameter {i} differs");
            }
        });
    }

    /// <summary>Runs <paramref name="body"/> with libtorch at <paramref name="threads"/> threads, then restores the count.</summary>
    static void AtThreads(int threads, Action body)
    {
        int before = torch.get_num_threads();
        torch.set_num_threads(threads);
        try { body(); }
        finally { torch.set_num_threads(before); }
    }

    /// <summary>Weights from a private generator, so the test does not depend on the global RNG that other tests move.</summary>
    internal static void Reinitialise(nn.Module net, long seed)
    {
        using var gen = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (name, p) in net.named_parameters())
        {
            if (p.dim() > 1) { double bound = 1 / Math.Sqrt(p[0].numel()); p.copy_(rand(p.shape, generator: gen) * (2 * bound) - bound); }
            else if (name.EndsWith("bias")) p.copy_(rand(p.shape, generator: gen) * 0.2 - 0.1);
        }
    }
}

public class KernelSelfCheckTests
{
    /// <summary>The start-up check passes on a machine whose kernels are right (it is this suite's premise: where it
    /// found disagreement, it moved the run to kernels that agree, and the line says so) and says so in one line.</summary>
    [Fact]
    public void TheStartUpCheckReportsItsFindingInOneLine()
    {
        var line = KernelSelfCheck.Ensure(volume: false);
        Assert.StartsWith("kernel self-check", line);
        Assert.DoesNotContain("\n", line);
        Assert.Contains("float64", line);
        Assert.Same(line, KernelSelfCheck.Ensure(volume: false)); // once per process and thread count
    }

    /// <summary>The last fallback reaches libtorch: oneDNN off and on again through at::Context (what PyTorch calls
    /// torch.backends.mkldnn.enabled), with the same loss either way.</summary>
    [Fact]
    public void OneDnnCanBeSwitchedOffAndOn()
    {
        Assert.Equal(true, SemiSeg.Runtime.TorchRuntime.OneDnn);
        using var gen = new Generator(3);
        using var net = new UNet2D(new UNetConfig { Dropout = new double[5] });
        net.eval();
        using var x = randn(new long[] { 1, 1, 32, 32 }, generator: gen);
        using var on = net.forward(x);
        try
        {
            SemiSeg.Runtime.TorchRuntime.OneDnn = false;
            Assert.Equal(false, SemiSeg.Runtime.TorchRuntime.OneDnn);
            using var off = net.forward(x);
            Assert.True(on.allclose(off, rtol: 1e-4, atol: 1e-5));
        }
        finally { SemiSeg.Runtime.TorchRuntime.OneDnn = true; }
        Assert.Equal(true, SemiSeg.Runtime.TorchRuntime.OneDnn);
    }

    /// <summary>The fallback for the failing shape class: padding the output convolution to 16 channels changes neither
    /// the logits nor any gradient (the padded channels are zero and narrowed away).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PaddedOutputConvolutionsGiveTheSameValuesAndGradients(bool volume)
    {
        using var gen = new Generator(7);
        nn.Module<Tensor, Tensor> Make() => volume ? new VNet(1, 2, dropout: false) : new UNet2D(new UNetConfig { Dropout = new double[5] });
        using var a = Make();
        using var b = Make();
        GradientCorrectnessTests.Reinitialise(a, 7);
        b.load_state_dict(a.state_dict());
        using var x = volume ? randn(new long[] { 1, 1, 16, 32, 32 }, generator: gen) : randn(new long[] { 2, 1, 32, 32 }, generator: gen);
        using var y = volume ? randint(0, 2, new long[] { 1, 16, 32, 32 }, generator: gen) : randint(0, 4, new long[] { 2, 32, 32 }, generator: gen);
        bool was = NarrowOutputs.Pad;
        Tensor la, lb;
        try
        {
            NarrowOutputs.Pad = false;
            la = a.forward(x);
            NarrowOutputs.Pad = true;
            lb = b.forward(x);
        }
        finally { NarrowOutputs.Pad = was; }
        Assert.Equal(la.shape, lb.shape);
        Assert.True(la.allclose(lb, rtol: 1e-5, atol: 1e-6), "logits differ");
        SegmentationLosses.CeDice(la, y).backward();
        SegmentationLosses.CeDice(lb, y).backward();
        foreach (var ((name, pa), pb) in a.named_parameters().Zip(b.parameters()))
            Assert.True(pa.grad!.allclose(pb.grad!, rtol: 1e-4, atol: 1e-6), $"{name}: gradient differs");
    }
}
