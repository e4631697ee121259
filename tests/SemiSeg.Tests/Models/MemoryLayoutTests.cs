using SemiSeg.Inference;
using SemiSeg.Losses;
using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Models;

/// <summary>channels_last is an optimisation only: one training step gives the same loss and gradients, and a
/// checkpoint written from a channels_last network loads into a plain one unchanged.</summary>
public class MemoryLayoutTests
{
    [Fact]
    public void ConversionKeepsValuesAndSetsStrides()
    {
        var t = arange(2 * 3 * 4 * 5, dtype: ScalarType.Float32).reshape(2, 3, 4, 5);
        var cl = MemoryLayout.ToChannelsLast(t);
        Assert.True(MemoryLayout.IsChannelsLast(cl));
        Assert.False(MemoryLayout.IsChannelsLast(t));
        Assert.Equal(new long[] { 60, 1, 15, 3 }, cl.stride());
        Assert.True(cl.eq(t).all().item<bool>());
    }

    /// <summary>A single-channel image and a first convolution's weight (one input channel) get PyTorch's channels_last
    /// strides, not only its memory order: libtorch reads their layout from the strides, and before this a UNet's or
    /// VNet's first convolution ran in NCHW and returned its widest activation in NCHW (docs/results.md, issue 21).</summary>
    [Fact]
    public void ASingleChannelImageAndTheFirstConvolutionStayChannelsLast()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 1, 8, 8);                      // NCHW strides (64, 64, 8, 1): also channels_last in memory order
        Assert.True(MemoryLayout.IsChannelsLast(x));
        var cl = MemoryLayout.ToChannelsLast(x);
        Assert.Equal(new long[] { 64, 1, 8, 1 }, cl.stride());
        Assert.True(cl.eq(x).all().item<bool>());
        var v = MemoryLayout.ToChannelsLast(randn(new long[] { 2, 1, 4, 8, 8 }));
        Assert.Equal(new long[] { 256, 1, 64, 8, 1 }, v.stride());

        using var conv = nn.Conv2d(1, 16, 3, padding: 1);
        MemoryLayout.ToChannelsLast(conv);
        Assert.Equal(new long[] { 9, 1, 3, 1 }, conv.weight!.stride());
        var y = conv.forward(cl);
        Assert.Equal(MemoryLayout.ChannelsLastStrides(y.shape), y.stride()); // libtorch kept channels_last
        using var conv3 = nn.Conv3d(1, 16, 3, padding: 1);
        MemoryLayout.ToChannelsLast(conv3);
        var y3 = conv3.forward(v);
        Assert.Equal(MemoryLayout.ChannelsLastStrides(y3.shape), y3.stride());
    }

    /// <summary>Each optimisation (channels_last, in-place activations) and both together against the plain network:
    /// the same loss; gradients that agree with the float64 network within the bound derived in <see cref="GradientCheck"/>
    /// (with the plain network's activation pattern, since two float32 summation orders may put a pre-activation on
    /// either side of 0, which no tolerance covers); after an SGD step the same weights.</summary>
    [Theory]
    [InlineData(UpMode.Bilinear, true, false)]
    [InlineData(UpMode.Bilinear, false, true)]
    [InlineData(UpMode.Bilinear, true, true)]
    [InlineData(UpMode.Transpose, true, true)]
    public void OneTrainingStepHasTheSameLossAndGradients(UpMode up, bool channelsLast, bool inplace)
    {
        var plain = new UNetConfig { Up = up, Dropout = new double[5], InplaceActivations = false };
        using var a = new UNet2D(plain);
        using var b = new UNet2D(plain with { InplaceActivations = inplace });
        SemiSeg.Tests.Training.GradientCorrectnessTests.Reinitialise(a, 4);
        b.load_state_dict(a.state_dict());
        if (channelsLast)
        {
            MemoryLayout.ToChannelsLast(b);
            Assert.All(b.parameters().Where(p => p.dim() == 4), p => Assert.True(MemoryLayout.IsChannelsLast(p)));
        }
        using var gen = new Generator(4);
        var x = randn(new long[] { 4, 1, 48, 48 }, generator: gen);
        var y = randint(0, 4, new long[] { 4, 48, 48 }, generator: gen);
        var la = SegmentationLosses.CeDice(a.forward(x), y);
        var lb = SegmentationLosses.CeDice(b.forward(channelsLast ? MemoryLayout.ToChannelsLast(x) : x), y);
        la.backward(); lb.backward();
        Assert.Equal(la.item<float>(), lb.item<float>(), 5);
        if (!inplace)
        {
            // the optimised network's own gradients, against float64 (GradientCheck needs out-of-place activations)
            var r = GradientCheck.Compare(b, () => new UNet2D(plain), x, y, (l, t) => SegmentationLosses.CeDice(l, t), channelsLast ? MemoryLayout.ToChannelsLast : null);
            Assert.True(r.Worst < GradientCheck.Bound, $"{r.WorstParameter}: {r.Worst:E2}");
        }
        else
        {
            // in-place activations change no value: the same gradients bit for bit as out-of-place in the same layout
            using var c = new UNet2D(plain);
            c.load_state_dict(a.state_dict());
            if (channelsLast) MemoryLayout.ToChannelsLast(c);
            SegmentationLosses.CeDice(c.forward(channelsLast ? MemoryLayout.ToChannelsLast(x) : x), y).backward();
            foreach (var ((name, pb), pc) in b.named_parameters().Zip(c.parameters()))
                Assert.True(pb.grad!.eq(pc.grad!).all().item<bool>(), $"{name}: in-place activations changed the gradient");
        }
        // and after an SGD step the weights still agree (a step moves each weight by lr·g, far below its size)
        var pa = a.parameters().ToArray(); var pb2 = b.parameters().ToArray();
        using var oa = optim.SGD(a.parameters(), 0.01, momentum: 0.9, weight_decay: 1e-4);
        using var ob = optim.SGD(b.parameters(), 0.01, momentum: 0.9, weight_decay: 1e-4);
        oa.step(); ob.step();
        for (int i = 0; i < pa.Length; i++) Assert.True(pa[i].allclose(pb2[i], rtol: 1e-4, atol: 1e-6));
    }

    [Fact]
    public void FiveDimensionalConversionUsesChannelsLast3d()
    {
        var t = arange(2 * 3 * 4 * 5 * 6, dtype: ScalarType.Float32).reshape(2, 3, 4, 5, 6);
        var cl = MemoryLayout.ToChannelsLast(t);
        Assert.True(MemoryLayout.IsChannelsLast(cl));
        Assert.False(MemoryLayout.IsChannelsLast(t));
        Assert.Equal(new long[] { 360, 1, 90, 18, 3 }, cl.stride()); // PyTorch's channels_last_3d strides for this shape
        Assert.True(cl.eq(t).all().item<bool>());
    }

    /// <summary>The VNet as 3D training runs it (channels_last_3d, in-place ReLU) against the plain one (NCDHW, out of
    /// place): the same loss; its out-of-place channels_last_3d gradients within the float64 bound; in-place ReLU the
    /// same gradients bit for bit as out of place in the same layout.</summary>
    [Fact]
    public void VNetInChannelsLast3dHasTheSameLossAndGradients()
    {
        TorchSharp.torch.manual_seed(6);
        using var a = new VNet(1, 2, dropout: false, inplace: false);
        using var b = new VNet(1, 2, dropout: false, inplace: true);
        using var c = new VNet(1, 2, dropout: false, inplace: false);
        b.load_state_dict(a.state_dict()); c.load_state_dict(a.state_dict());
        MemoryLayout.ToChannelsLast(b); MemoryLayout.ToChannelsLast(c);
        Assert.All(b.parameters().Where(p => p.dim() == 5), p => Assert.True(MemoryLayout.IsChannelsLast(p)));
        using var gen = new Generator(6);
        var x = randn(new long[] { 2, 1, 16, 32, 32 }, generator: gen);
        var y = randint(0, 2, new long[] { 2, 16, 32, 32 }, generator: gen);
        var la = SegmentationLosses.CeDice(a.forward(x), y);
        var lb = SegmentationLosses.CeDice(b.forward(MemoryLayout.ToChannelsLast(x)), y);
        var lc = SegmentationLosses.CeDice(c.forward(MemoryLayout.ToChannelsLast(x)), y);
        la.backward(); lb.backward(); lc.backward();
        Assert.Equal(la.item<float>(), lb.item<float>(), 5);
        foreach (var ((name, pb), pc) in b.named_parameters().Zip(c.parameters()))
            Assert.True(pb.grad!.eq(pc.grad!).all().item<bool>(), $"{name}: in-place ReLU changed the gradient");
        var r = GradientCheck.Compare(c, () => new VNet(1, 2, dropout: false, inplace: false), x, y, (l, t) => SegmentationLosses.CeDice(l, t), MemoryLayout.ToChannelsLast);
        Assert.True(r.Worst < GradientCheck.Bound, $"{r.WorstParameter}: {r.Worst:E2}");
    }

    [Fact]
    public void ChannelsLastCheckpointLoadsIntoAPlainNetwork()
    {
        using var t = new TempDir();
        TorchSharp.torch.manual_seed(5);
        using var m = new SupervisedMethod(new UNetConfig());
        using var x = randn(2, 1, 32, 32);
        m.Network.eval();
        using var before = m.Network.forward(x);
        MemoryLayout.ToChannelsLast(m.Network);
        Checkpoint.Save(t["cl.ckpt"], new CheckpointMeta { Network = m.Network.Config, PatchHeight = 32, PatchWidth = 32 }, m, null);
        var (net, _) = CheckpointFile.LoadNetwork(t["cl.ckpt"]);
        using var __ = net;
        net.eval();
        using var after = net.forward(x);
        Assert.True(before.allclose(after, rtol: 1e-4, atol: 1e-5));
    }
}
