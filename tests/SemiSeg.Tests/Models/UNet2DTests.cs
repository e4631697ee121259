using SemiSeg.Inference;
using SemiSeg.Losses;
using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Models;

public class UNet2DTests
{
    [Theory]
    [InlineData(UpMode.Bilinear)]
    [InlineData(UpMode.Transpose)]
    public void ForwardBackwardAndOptimizerStepRun(UpMode up)
    {
        using var t = new TempDir();
        torch.manual_seed(1);
        using var net = new UNet2D(new UNetConfig { Up = up });
        var x = randn(2, 1, 64, 64);
        var y = randint(0, 4, new long[] { 2, 64, 64 }).to_type(ScalarType.Int64);
        var logits = net.forward(x);
        Assert.Equal(new long[] { 2, 4, 64, 64 }, logits.shape);
        using var opt = optim.SGD(net.parameters(), 0.05, momentum: 0.9);
        float first = 0, last = 0;
        net.eval(); // fixed batch, no dropout noise: the loss must fall
        for (int i = 0; i < 8; i++)
        {
            using var scope = NewDisposeScope();
            var loss = SegmentationLosses.CeDice(net.forward(x), y);
            opt.zero_grad();
            loss.backward();
            if (i == 0)
            {
                first = loss.item<float>();
                Assert.All(net.parameters(), p => Assert.NotNull(p.grad));
                Assert.True(net.parameters().Sum(p => p.grad!.abs().sum().item<float>()) > 0);
            }
            opt.step();
            last = loss.item<float>();
        }
        Assert.True(last < first, $"loss did not fall: {first} -> {last}");
    }

    [Fact]
    public void ParameterCountMatchesTheReferenceNetwork()
    {
        // SSL4MIS UNet(in_chns=1, class_num=4) with the bilinear (1x1 conv) up path: 1,813,764 parameters; transposed: 1,944,324 (counted with PyTorch on the peer_mt.py definition).
        using var bil = new UNet2D(new UNetConfig { Up = UpMode.Bilinear });
        using var tr = new UNet2D(new UNetConfig { Up = UpMode.Transpose });
        Assert.Equal(1813764, bil.parameters().Sum(p => p.numel()));
        Assert.Equal(1944324, tr.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void CheckpointRoundTripRebuildsTheSameNetwork()
    {
        using var t = new TempDir();
        torch.manual_seed(2);
        using var m = new SupervisedMethod(new UNetConfig { Up = UpMode.Transpose, NumClasses = 3 });
        var path = t["w.ckpt"];
        Checkpoint.Save(path, new CheckpointMeta { Network = m.Network.Config, PatchHeight = 32, PatchWidth = 32, Iteration = 7 }, m, null);
        var (net, meta) = CheckpointFile.LoadNetwork(path);
        using var _ = net;
        Assert.Equal(7, meta.Iteration);
        Assert.Equal(UpMode.Transpose, meta.Network.Up);
        m.Network.eval(); net.eval();
        using var x = randn(1, 1, 32, 32);
        using var a = m.Network.forward(x);
        using var b = net.forward(x);
        Assert.True(a.allclose(b));
        File.WriteAllText(t["bad.ckpt"], "nope");
        Assert.Contains("bad.ckpt", Assert.Throws<InvalidDataException>(() => CheckpointFile.LoadNetwork(t["bad.ckpt"])).Message);
    }
}
