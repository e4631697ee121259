using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Models;

public class BatchNormGroupsTests
{
    // SSL4MIS UNet without dropout (its masks would be drawn differently for one 4-image call than for two 2-image calls)
    static UNet2D Net(long seed)
    {
        torch.manual_seed(seed);
        var net = new UNet2D(new UNetConfig { Dropout = new double[] { 0, 0, 0, 0, 0 } });
        net.train();
        return net;
    }

    static double MaxAbs(Tensor t) => t.abs().max().item<float>();

    [Fact]
    public void OneSplitForwardComputesWhatTwoForwardCallsCompute()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(7);
        // two batches with clearly different statistics, so a shared normalisation would show
        var a = randn(2, 1, 32, 32);
        var b = randn(2, 1, 32, 32) * 3 + 2;
        var target = randn(4, 4, 32, 32);
        using var separate = Net(11);
        using var split = Net(11);
        using var joint = Net(11);

        var outA = separate.forward(a); var outB = separate.forward(b);
        (cat(new[] { outA, outB }, 0) * target).sum().backward();
        var outs = BatchNormGroups.Forward(split.forward, a, b);
        (cat(outs, 0) * target).sum().backward();
        var outJoint = joint.forward(cat(new[] { a, b }, 0));

        // Outputs: the same sums of float32 products in another order, over at most 3x3x256 = 2304 terms of O(1)
        // activations: a few units of float32 rounding (1.2e-7) times sqrt(2304) ~ 48, far under 1e-4 of O(1) logits.
        Assert.True(MaxAbs(outs[0] - outA) < 1e-4 && MaxAbs(outs[1] - outB) < 1e-4,
            $"split outputs differ from two calls by {MaxAbs(outs[0] - outA)}, {MaxAbs(outs[1] - outB)}");
        // and the test can tell: one forward over the concatenation normalises both batches together
        Assert.True(MaxAbs(outJoint.narrow(0, 0, 2) - outA) > 0.1, "a joint forward should differ; the test cannot see a split");

        // Gradients: relative to the largest gradient of the network. A convolution bias right before a batch norm has
        // a true gradient of 0 (the norm subtracts the mean), so what both paths compute there is rounding of sums of
        // terms of the network's gradient scale, not of the result's (under 1e-6 of it here); 1e-4 of it bounds both.
        var sep = separate.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        double scale = sep.Values.Max(p => MaxAbs(p.grad!));
        foreach (var (name, p) in split.named_parameters())
        {
            var g = p.grad!; var want = sep[name].grad!;
            Assert.True(MaxAbs(g - want) <= 1e-4 * scale, $"{name}: gradient off by {MaxAbs(g - want)} (its max {MaxAbs(want)}, the network's {scale})");
        }
        // running statistics: updated once per batch, in order (momentum 0.1 twice), and counted twice
        var sepBuffers = separate.named_buffers().ToDictionary(p => p.name, p => p.buffer);
        int checkedBuffers = 0;
        foreach (var (name, buf) in split.named_buffers())
        {
            var want = sepBuffers[name];
            if (name.EndsWith("num_batches_tracked")) Assert.Equal(2L, buf.item<long>());
            else Assert.True(MaxAbs(buf - want) <= 1e-5 * Math.Max(MaxAbs(want), 1), $"{name}: running statistic off by {MaxAbs(buf - want)}");
            checkedBuffers++;
        }
        Assert.Equal(18 * 3, checkedBuffers); // 18 batch norms, each with mean, variance and count
    }

    [Fact]
    public void TheSplitEndsWithItsScopeAndNeedsEqualBatches()
    {
        using var scope = NewDisposeScope();
        using var net = Net(3);
        using (BatchNormGroups.Split(2))
        {
            Assert.Equal(2, BatchNormGroups.Current);
            var e = Assert.Throws<ArgumentException>(() => net.forward(randn(3, 1, 32, 32)));
            Assert.Contains("3 does not split into 2", e.Message);
        }
        Assert.Equal(1, BatchNormGroups.Current);
        // evaluation uses the running statistics: a split changes nothing there, and an odd batch is fine
        net.eval();
        var x = randn(3, 1, 32, 32);
        var plain = net.forward(x);
        using (BatchNormGroups.Split(2)) Assert.Equal(0.0, MaxAbs(net.forward(x) - plain));
    }
}
