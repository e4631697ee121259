using SemiSeg.Models;
using SemiSeg.Training;
using Xunit;

namespace SemiSeg.Tests.Training;

/// <summary>`semiseg bench --method`: the network passes it counts are the ones the method's step really runs, read
/// at each network's encoder and output convolution (an image with autograd counts 3, without 1, per image of the
/// 4 + 4 batch).</summary>
public class BenchmarkTests
{
    [Theory]
    [InlineData("supervised", "UNet2D", 1.5)]     // the 4 labeled images, with autograd
    [InlineData("mean-teacher", "UNet2D", 3.5)]   // student on 8 (24) + teacher on 4 (4) = 28 / 8
    [InlineData("ersr", "UNet2D", 4.0)]           // student 24 + teacher 4 + its mirrored pass 4 = 32 / 8
    [InlineData("cps", "UNet2D", 6.0)]            // two students on all 8 images
    public void MethodStepCountsTheNetworkPassesTheStepRuns(string method, string network, double passes)
    {
        var r = Benchmark.MethodStep2D(method, 32, 4, 4, iterations: 2, warmup: 0);
        Assert.True(r.seconds > 0);
        var only = Assert.Single(r.passes);
        Assert.Equal(network, only.Key);
        if (NarrowOutputs.Pad) Assert.True(double.IsNaN(only.Value)); // padded output convolutions bypass the count
        else Assert.Equal(passes, only.Value, 12);
    }

    [Fact]
    public void InterleavedMethodsKeepTheirOwnCountsAndTimes()
    {
        // one process, iterations interleaved: each method's passes are its own (not the sum of what ran between its
        // steps), and each has its own timed iterations; the @network form gives supervised its ResUNet
        var r = Benchmark.MethodSteps2D(new[]
        {
            new Benchmark.MethodUnderTest("mean-teacher"), new Benchmark.MethodUnderTest("supervised"),
            new Benchmark.MethodUnderTest("supervised", Net2DKind.Resunet),
        }, 32, 4, 4, iterations: 2, warmup: 1);
        Assert.Equal(3, r.Count);
        Assert.All(r, t => Assert.True(t.Seconds > 0));
        // every timed iteration (not the warm-up), and the figure is their median
        Assert.All(r, t => Assert.Equal(2, t.IterationSeconds.Count));
        Assert.All(r, t => Assert.Equal(Benchmark.Median(t.IterationSeconds.ToArray()), t.Seconds, 15));
        Assert.Equal("UNet2D", Assert.Single(r[0].Passes).Key);
        Assert.Equal("ResUNet2D", Assert.Single(r[2].Passes).Key);
        if (NarrowOutputs.Pad) return;
        Assert.Equal(3.5, r[0].Passes["UNet2D"], 12);
        Assert.Equal(1.5, r[1].Passes["UNet2D"], 12);
        Assert.Equal(1.5, r[2].Passes["ResUNet2D"], 12);
    }

    [Fact]
    public void EncoderOnlyPassesCountForTheEncodersShare()
    {
        // meta-contrast encodes the 8 images and a second view of the 4 unlabeled ones (12, autograd on) and decodes
        // the 4 labeled ones: 36 encoder and 12 decoder image-units, weighed by the encoder's share of the FLOPs
        var r = Benchmark.MethodStep2D("meta-contrast", 32, 4, 4, iterations: 1, warmup: 0);
        double share = Benchmark.UNetEncoderFlops(new UNetConfig(), 32) / Benchmark.UNetForwardFlops(new UNetConfig(), 32);
        Assert.InRange(share, 0.2, 0.5);
        if (!NarrowOutputs.Pad) Assert.Equal((share * 36 + (1 - share) * 12) / 8, r.passes["UNet2D"], 12);
    }

    [Fact]
    public void TwoNetworkMethodsAreCountedPerNetwork()
    {
        var r = Benchmark.MethodStep2D("c3s3", 32, 4, 4, iterations: 1, warmup: 0);
        Assert.Equal(new[] { "ResUNet2D", "UNet2D" }, r.passes.Keys.OrderBy(k => k, StringComparer.Ordinal));
        if (!NarrowOutputs.Pad) Assert.Equal(r.passes["UNet2D"], r.passes["ResUNet2D"], 12);
    }

    [Fact]
    public void TheConvolutionFloorListsTheUNetsOwnConvolutions()
    {
        // the layer list behind `bench`'s "convolutions alone" line: the real network's convolutions (shapes as a
        // multiset) and, with their input sides, exactly the FLOPs the bench reports per forward
        var cfg = new UNetConfig();
        var layers = Benchmark.UNetConvolutions(cfg, 96)!;
        using var net = new UNet2D(cfg);
        var real = net.modules().OfType<TorchSharp.Modules.Conv2d>().Select(c => c.weight!.shape)
            .Select(s => $"{s[1]}->{s[0]} k{s[2]}").OrderBy(x => x, StringComparer.Ordinal);
        Assert.Equal(real, layers.Select(l => $"{l.In}->{l.Out} k{l.Kernel}").OrderBy(x => x, StringComparer.Ordinal));
        Assert.Equal(Benchmark.UNetForwardFlops(cfg, 96), layers.Sum(l => 2.0 * l.In * l.Out * l.Kernel * l.Kernel * l.Side * l.Side), 6);
        // the counts by hand (Σ 2·C_in·C_out·k²·side², the UNet at 1 input channel and 4 classes), which the bench's
        // GFLOP/iteration line rests on: 23.2 GFLOP for Mean Teacher at 96x96 batch 8 = 28 image-passes
        Assert.Equal(829_587_456.0, Benchmark.UNetForwardFlops(cfg, 96));
        Assert.Equal(299_925_504.0, Benchmark.UNetEncoderFlops(cfg, 96));
        Assert.Equal(829_587_456.0 - 299_925_504.0, Benchmark.UNetDecoderFlops(cfg, 96));
        Assert.Equal(95_322_112.0, Benchmark.UNetForwardFlops(cfg with { Up = UpMode.Transpose }, 32)); // 2x2 stride-2 up convolutions
        Assert.Single(layers, l => !l.InputGrad);   // only the first convolution, whose input is the image
        Assert.False(layers[0].InputGrad);

        double s = Benchmark.ConvolutionFloorSeconds(cfg, 32, 2, 1, reps: 1);
        Assert.True(s > 0 && double.IsFinite(s));
        Assert.True(double.IsNaN(Benchmark.ConvolutionFloorSeconds(cfg with { Kind = Net2DKind.Resunet }, 32, 2, 1)));
        Assert.Null(Benchmark.UNetConvolutions(cfg with { Up = UpMode.Transpose }, 32));
    }

    [Fact]
    public void MedianIsPythonsStatisticsMedian()
    {
        Assert.Equal(2.0, Benchmark.Median(new[] { 3.0, 1.0, 2.0 }));
        Assert.Equal(2.5, Benchmark.Median(new[] { 4.0, 1.0, 3.0, 2.0 })); // the mean of the middle two, as the peers report
    }
}
