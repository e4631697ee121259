using SemiSeg.Inference;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Models;

public class Networks3DTests
{
    /// <summary>
    /// Without gradients (an EMA teacher, a sliding window) the VNet frees each intermediate as soon as it is consumed,
    /// as PyTorch's reference counting does in the lineage's forward, instead of keeping all of them until the end of
    /// its dispose scope. When the last decoder block's batch norm runs, what the forward still holds is that block's
    /// input (the sum of the last up-sampled map and the first skip), the convolution's output and the batch norm's
    /// output: the other skips, up-sampled maps and layer outputs are gone (without the eager release, 19 more).
    /// The hook sits inside the decoder, not on the output convolution, which the start-up self-check may reroute
    /// (NarrowOutputs.Pad) past its hooks.
    /// </summary>
    [Fact]
    public void VNetWithoutGradientsHoldsOnlyTheTensorsInFlight()
    {
        torch.manual_seed(2);
        using var net = new VNet(numClasses: 2, dropout: false);
        net.eval();
        using var scope = NewDisposeScope();
        var x = randn(new long[] { 1, 1, 16, 32, 32 });
        var bn = (nn.Module<Tensor, Tensor>)net.named_modules().Single(m => m.name == "dec.3.body.bn0").module;
        long atLastBlock = -1, baseline;
        var hook = bn.register_forward_hook((_, _, y) => { atLastBlock = DisposeScopeManager.Statistics.ThreadTotalLiveCount; return y; });
        try
        {
            using (no_grad())
            {
                baseline = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
                using var logits = net.forward(x);
            }
        }
        finally { hook.remove(); }
        Assert.Equal(3, atLastBlock - baseline);
    }

    [Fact]
    public void VNetAndUNet3DKeepTheShapeAndVNetHasTheLineagesSize()
    {
        torch.manual_seed(1);
        using var v = new VNet(numClasses: 2);
        v.eval();
        Assert.Equal(new long[] { 1, 2, 16, 32, 32 }, v.forward(randn(new long[] { 1, 1, 16, 32, 32 })).shape);
        long parameters = v.parameters().Sum(p => p.numel());
        Assert.InRange(parameters, 9_400_000, 9_500_000); // the LA papers' "VNet, 9.44M"
        using var u = new UNet3D(numClasses: 3);
        u.eval();
        Assert.Equal(new long[] { 2, 3, 16, 16, 16 }, u.forward(randn(new long[] { 2, 1, 16, 16, 16 })).shape);
    }

    [Fact]
    public void VNetDropoutActsOnlyInTraining()
    {
        torch.manual_seed(2);
        using var v = new VNet(numClasses: 2);
        var x = randn(new long[] { 1, 1, 16, 16, 16 });
        v.eval();
        Assert.True(v.forward(x).allclose(v.forward(x)));
        v.train();
        Assert.False(v.forward(x).allclose(v.forward(x)));
    }

    /// <summary>forward hands back the logits and nothing else: no handle is left on the last decoder map (the widest
    /// activation), which would otherwise stay alive through the whole backward pass, past where autograd drops it.</summary>
    [Fact]
    public void VNetForwardLeavesOnlyTheLogitsAlive()
    {
        torch.manual_seed(3);
        using var net = new VNet(numClasses: 2);
        net.train();
        using var x = randn(new long[] { 1, 1, 16, 32, 32 });
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using var logits = net.forward(x);
        Assert.Equal(1, DisposeScopeManager.Statistics.ThreadTotalLiveCount - before);
    }

    /// <summary>The output dropout folded into the output convolution's weights gives the literal dropout3d-then-conv's
    /// logits and gradients, from the same random draws (so a seeded run is unchanged), in channels_last_3d as trained.</summary>
    [Fact]
    public void FoldedOutputDropoutIsTheLiteralDropoutThenConvolution()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(5);
        using var folded = new VNet(numClasses: 2);
        using var literal = new VNet(numClasses: 2) { FoldOutputDropout = false };
        literal.load_state_dict(folded.state_dict());
        MemoryLayout.ToChannelsLast(folded); MemoryLayout.ToChannelsLast(literal);
        folded.train(); literal.train();
        var x = MemoryLayout.ToChannelsLast(randn(new long[] { 3, 1, 16, 16, 16 }));
        var target = randn(new long[] { 3, 2, 16, 16, 16 });
        torch.manual_seed(9);
        var a = folded.forward(x);
        (a * target).sum().backward();
        torch.manual_seed(9);
        var b = literal.forward(x);
        (b * target).sum().backward();
        // Same draws: the logits agree to float32 rounding of a 16-term sum, where different draws would differ
        // by O(1) in whole channels. Gradients: rounding relative to the network's largest gradient, as in
        // BatchNormGroupsTests (biases before a batch norm have a true gradient of 0).
        double logitScale = b.abs().max().item<float>();
        Assert.True((a - b).abs().max().item<float>() <= 1e-5 * logitScale, $"logits differ by {(a - b).abs().max().item<float>()}");
        var want = literal.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
        double scale = want.Values.Max(g => (double)g.abs().max().item<float>());
        foreach (var (name, p) in folded.named_parameters())
            Assert.True((p.grad! - want[name]).abs().max().item<float>() <= 1e-4 * scale, $"{name}: gradient off by {(p.grad! - want[name]).abs().max().item<float>()} of {scale}");
    }

    [Fact]
    public void WindowStartsFollowTheReferenceRule()
    {
        Assert.Equal(new[] { 0, 4, 8, 12, 16, 20 }, SlidingWindowInferer.Starts(100, 80, 4));
        Assert.Equal(new[] { 0, 18, 31 }, SlidingWindowInferer.Starts(143, 112, 18));
        Assert.Equal(new[] { 0 }, SlidingWindowInferer.Starts(80, 80, 4));
    }

    [Fact]
    public void OneWindowEqualsWholeVolumeInference()
    {
        torch.manual_seed(3);
        using var v = new VNet(numClasses: 2);
        v.eval();
        var vol = rand(16, 32, 32);
        var r = SlidingWindowInferer.Predict(v, vol.data<float>().ToArray(), 16, 32, 32, 2, (16, 32, 32), (4, 18, 18));
        Assert.Equal(1, r.Windows);
        Tensor whole;
        using (no_grad()) whole = nn.functional.softmax(v.forward(vol.reshape(1, 1, 16, 32, 32)), 1)[0];
        Assert.Equal(whole.contiguous().data<float>().ToArray(), r.Probabilities);
        Assert.Equal(whole.argmax(0).to_type(ScalarType.Byte).contiguous().data<byte>().ToArray(), r.Labels);
    }

    [Fact]
    public void OverlappingWindowsAreAveragedAndPaddingIsCroppedAway()
    {
        torch.manual_seed(4);
        using var u = new UNet3D(numClasses: 2, features: new[] { 4, 8, 8, 8, 8 });
        u.eval();
        var vol = rand(16, 16, 48);
        var r = SlidingWindowInferer.Predict(u, vol.data<float>().ToArray(), 16, 16, 48, 2, (16, 16, 32), (16, 16, 16));
        Assert.Equal(2, r.Windows);
        Tensor a, b;
        using (no_grad())
        {
            a = nn.functional.softmax(u.forward(vol.narrow(2, 0, 32).reshape(1, 1, 16, 16, 32)), 1)[0];
            b = nn.functional.softmax(u.forward(vol.narrow(2, 16, 32).reshape(1, 1, 16, 16, 32)), 1)[0];
        }
        var p = tensor(r.Probabilities).reshape(2, 16, 16, 48);
        Assert.True(p.narrow(3, 0, 16).allclose(a.narrow(3, 0, 16), atol: 1e-6));
        Assert.True(p.narrow(3, 16, 16).allclose((a.narrow(3, 16, 16) + b.narrow(3, 0, 16)) / 2, atol: 1e-6));
        Assert.True(p.narrow(3, 32, 16).allclose(b.narrow(3, 16, 16), atol: 1e-6));
        // smaller than the patch: padded, one window, cropped back
        var small = SlidingWindowInferer.Predict(u, new float[10 * 12 * 20], 10, 12, 20, 2, (16, 16, 32), (4, 8, 8));
        Assert.Equal(1, small.Windows);
        Assert.Equal(10 * 12 * 20, small.Labels.Length);
        Assert.True(u.training == false);
    }
}
