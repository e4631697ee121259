using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Models;

public class ParallelDropoutTests
{
    [Theory]
    [InlineData(0.05)]
    [InlineData(0.5)]
    public void MaskIsScaledBernoulliWithTheKeepProbability(double p)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(3);
        var x = ones(8, 16, 64, 64);                       // 524 288 elements, several chunks
        var drop = new ParallelDropout(p);
        drop.train();
        var y = drop.forward(x);
        float scale = (float)(1 / (1 - p));
        var kept = y.eq(scale); var zero = y.eq(0);
        Assert.True(kept.logical_or(zero).all().item<bool>(), "values other than 0 and 1/(1-p)");
        long n = x.numel();
        double frac = kept.sum().item<long>() / (double)n, sd = Math.Sqrt(p * (1 - p) / n);
        Assert.True(Math.Abs(frac - (1 - p)) < 5 * sd, $"kept fraction {frac} vs {1 - p} (sd {sd})");
        // no correlation between neighbours (a broken stream split would repeat patterns)
        var flat = kept.flatten().to_type(ScalarType.Float32);
        var a = flat.narrow(0, 0, n - 1); var b = flat.narrow(0, 1, n - 1);
        double cov = ((a * b).mean() - a.mean() * b.mean()).item<float>();
        Assert.True(Math.Abs(cov) < 5 * p * (1 - p) / Math.Sqrt(n), $"lag-1 covariance {cov}");
    }

    [Fact]
    public void GradientIsTheMaskAndEvaluationIsTheIdentity()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 4, 32, 32).requires_grad_(true);
        var drop = new ParallelDropout(0.3);
        drop.train();
        var y = drop.forward(x);
        y.sum().backward();
        var mask = y.detach() / x.detach();
        Assert.True(x.grad!.allclose(mask, rtol: 1e-5, atol: 1e-6), "gradient differs from the mask");
        drop.eval();
        Assert.True(drop.forward(x).equal(x).all().item<bool>());
    }

    [Fact]
    public void SeededRunsRepeatAndChannelsLastIsKept()
    {
        using var scope = NewDisposeScope();
        var x = MemoryLayout.ToChannelsLast(randn(4, 8, 16, 16));
        var drop = new ParallelDropout(0.2); drop.train();
        torch.manual_seed(11); var y1 = drop.forward(x);
        torch.manual_seed(11); var y2 = drop.forward(x);
        var y3 = drop.forward(x);
        Assert.True(y1.equal(y2).all().item<bool>());
        Assert.False(y1.equal(y3).all().item<bool>());
        Assert.True(MemoryLayout.IsChannelsLast(y1), "output left channels_last");
        // the streams are per chunk: the same seed gives the same mask on 1 or 2 threads
        var one = new float[200_003]; var two = new float[200_003];
        unsafe
        {
            fixed (float* p1 = one) DropoutMask.Fill((IntPtr)p1, one.Length, 0.1, 42, 1);
            fixed (float* p2 = two) DropoutMask.Fill((IntPtr)p2, two.Length, 0.1, 42, 2);
        }
        Assert.Equal(one, two);
        Assert.Contains(0f, one);
    }

    [Fact]
    public void TheVectorisedFillWritesTheScalarLoopsMask()
    {
        // the vector loops must write exactly the mask of the scalar loop they replace, at every tail length and chunk
        // boundary, for a rare and a common drop and for keep-all; each width this CPU accelerates is checked
        var widths = new List<int>();
        if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) widths.Add(512);
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated) widths.Add(256);
        var counts = new[] { 1, 2, 7, 8, 15, 16, 17, 31, 65_535, 65_536, 65_537, 200_003, 4_500_001 };
        foreach (int n in counts)
            foreach (double p in new[] { 0.05, 0.5, 1e-12 })
            {
                var scalar = new float[n];
                unsafe { fixed (float* d = scalar) DropoutMask.Fill((IntPtr)d, n, p, 1234567, 2, vectorBits: 0); }
                foreach (int bits in widths)
                {
                    var vector = new float[n];
                    unsafe { fixed (float* d = vector) DropoutMask.Fill((IntPtr)d, n, p, 1234567, 2, bits); }
                    Assert.True(scalar.AsSpan().SequenceEqual(vector), $"{bits}-bit masks differ at {n} elements, p = {p}");
                }
                if (n > 1000 && p == 0.5) Assert.InRange(scalar.Count(v => v == 0) / (double)n, 0.45, 0.55);
            }
    }
}
