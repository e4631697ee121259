using SemiSeg.Inference;
using SemiSeg.Data;
using SemiSeg.Losses;
using SemiSeg.Methods;
using SemiSeg.Methods.Volume;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

public class VolumeMethodsTests
{
    static VolumeMethodContext Context(params string[] kv) =>
        new(new Net3DConfig { Dropout = false }, new UNetConfig { NumClasses = 2 }, MethodSettings.Parse(kv));

    [Fact]
    public void MnUnlabeledShareGrowsLinearlyAfterTheWarmup()
    {
        // the released rule n_u = floor((t − w)/(T − w)·B), w = T/8
        Assert.Equal(0, TwoDimToThreeDimCoTrainingMethod.UnlabeledCount(0, 4000, 5, 0.125));
        Assert.Equal(0, TwoDimToThreeDimCoTrainingMethod.UnlabeledCount(499, 4000, 5, 0.125));
        Assert.Equal(0, TwoDimToThreeDimCoTrainingMethod.UnlabeledCount(500, 4000, 5, 0.125));
        Assert.Equal(1, TwoDimToThreeDimCoTrainingMethod.UnlabeledCount(1200, 4000, 5, 0.125)); // 700/3500·5 = 1
        Assert.Equal(2, TwoDimToThreeDimCoTrainingMethod.UnlabeledCount(2250, 4000, 5, 0.125)); // 1750/3500·5 = 2.5
        Assert.Equal(4, TwoDimToThreeDimCoTrainingMethod.UnlabeledCount(3999, 4000, 5, 0.125));
        using var m = new TwoDimToThreeDimCoTrainingMethod(Context());
        Assert.Equal((5, 0), ((IVolumeMethod)m).Composition(100, 4000, 5, 2));
        Assert.Equal((3, 2), ((IVolumeMethod)m).Composition(2250, 4000, 5, 2));
        Assert.Equal((1, 4), ((IVolumeMethod)m).Composition(3999, 4000, 5, 2));
    }

    [Fact]
    public void SliceWiseRunsThe2DNetworkOnEverySlice()
    {
        manual_seed(3);
        using var net = new UNet2D(new UNetConfig { NumClasses = 3 });
        net.eval();
        var x = randn(new long[] { 2, 1, 3, 16, 16 });
        var y = TwoDimToThreeDimCoTrainingMethod.SliceWise(net, x);
        Assert.Equal(new long[] { 2, 3, 3, 16, 16 }, y.shape);
        // slice (b=1, z=2) through the 2D network alone
        var one = net.forward(x[1, .., 2].unsqueeze(0));
        Assert.True(one[0].allclose(y[1, .., 2], rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void MnLossIsDicePlusKlAndZeroAtAPerfectOneHotFit()
    {
        using var m = new TwoDimToThreeDimCoTrainingMethod(Context("kl_weight=1"));
        var target = zeros(new long[] { 1, 2, 1, 2, 2 }); target[0, 1, 0, 0, 0] = tensor(1f); target[0, 0, 0, 0, 1] = tensor(1f); target[0, 0, 0, 1, 0] = tensor(1f); target[0, 0, 0, 1, 1] = tensor(1f);
        var perfect = target * 40 - 20; // softmax ≈ one-hot
        Assert.True(m.Loss(perfect, target).item<float>() < 1e-4);
        // uniform logits: KL = ln 2 per voxel, which KLDivLoss(reduction='mean') also divides by the 2 classes;
        // Dice = 1 − mean_c 2Σ0.5t/(Σ0.25 + Σt²)
        var uniform = zeros(new long[] { 1, 2, 1, 2, 2 });
        double dice1 = 2 * 0.5 * 1 / (4 * 0.25 + 1), dice0 = 2 * 0.5 * 3 / (4 * 0.25 + 3);
        double expected = 1 - (dice0 + dice1) / 2 + Math.Log(2) / 2;
        Assert.Equal(expected, m.Loss(uniform, target).item<float>(), 5);
    }

    [Fact]
    public void Init2DCopiesTheUserCheckpointsWeights()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 1, unlabeled: 0, val: 0, test: 0, depth: 2, size: 32);
        var run = new Trainer(new TrainOptions { OutputDir = t["run"], MaxIterations = 1, PatchHeight = 32, PatchWidth = 32, BatchSize = 2, LabeledBatchSize = 2 },
            CustomDataset.Load(t["data"], 4)).Run();
        using var mn = new TwoDimToThreeDimCoTrainingMethod(new VolumeMethodContext(new Net3DConfig(), new UNetConfig(), MethodSettings.Parse(new[] { $"init_2d={run.BestCheckpoint}" })));
        Assert.True(mn.Initialised2D > 50);
        var (src, _) = CheckpointFile.LoadNetwork(run.BestCheckpoint);
        using (src)
        {
            var mine = mn.Net2D.state_dict();
            foreach (var (k, v) in src.state_dict()) Assert.True(v.allclose(mine[k]), $"{k} not copied");
        }
    }

    [Fact]
    public void BcpContextMaskHasATwoThirdsBox()
    {
        var m = VolumeCopyPasteMethod.ContextMask(12, 9, 6, new Random(1));
        Assert.Equal(8 * 6 * 4, m.Count(v => v == 0));
        Assert.Equal(12 * 9 * 6 - 8 * 6 * 4, m.Count(v => v == 1));
    }

    [Fact]
    public void DiceIsTheSameForVolumesAndTheirSlices()
    {
        manual_seed(5);
        var probs = nn.functional.softmax(randn(new long[] { 2, 3, 4, 5, 6 }), 1);
        var target = randint(0, 3, new long[] { 2, 4, 5, 6 });
        var d3 = SegmentationLosses.Dice(probs, target).item<float>();
        var slices = probs.permute(0, 2, 1, 3, 4).reshape(8, 3, 5, 6);
        var d2 = SegmentationLosses.Dice(slices, target.reshape(8, 5, 6)).item<float>();
        Assert.Equal(d2, d3, 5);
    }

    /// <summary>Mean Teacher and UA-MT run the no-gradient teacher before the student, so that the teacher's
    /// activations come and go before the student's saved ones build up (peak memory at the LA patch); every teacher
    /// convolution runs before the first student one.</summary>
    [Fact]
    public void MeanTeacherRunsTheTeacherBeforeTheStudent()
    {
        foreach (var name in new[] { "mean-teacher", "ua-mt" })
        {
            manual_seed(8);
            using var scope = NewDisposeScope();
            using var method = new VolumeMeanTeacherMethod(Context("passes=2"), uncertaintyAware: name == "ua-mt");
            var order = new List<string>();
            var hooks = new List<nn.HookableModule<Func<nn.Module<Tensor, Tensor>, Tensor, Tensor>, Func<nn.Module<Tensor, Tensor>, Tensor, Tensor, Tensor>>.HookRemover>();
            foreach (var (net, who) in new[] { (method.Teacher, "teacher"), (method.Student, "student") })
                foreach (var conv in net.modules().OfType<TorchSharp.Modules.Conv3d>())
                    hooks.Add(conv.register_forward_hook((_, _, y) => { order.Add(who); return y; }));
            try
            {
                var x = randn(new long[] { 4, 1, 16, 16, 16 });
                var y = (x.narrow(0, 0, 2)[.., 0] > 0.5).to_type(ScalarType.Int64);
                var step = method.Step(x, y, 2, new TrainingContext(999, 1000, 0.01));
                Assert.True(float.IsFinite(step.Loss.item<float>()), name);
            }
            finally { foreach (var h in hooks) h.remove(); }
            Assert.Contains("teacher", order);
            Assert.Contains("student", order);
            Assert.True(order.LastIndexOf("teacher") < order.IndexOf("student"), $"{name}: the student ran before the teacher finished");
        }
    }

    [Fact]
    public void EveryVolumeMethodTakesAStepOnARealVNet()
    {
        foreach (var e in MethodRegistry.Volumes)
        {
            manual_seed(7);
            using var scope = NewDisposeScope();
            var kv = e.Name == "bcp" ? new[] { "pretrain_iterations=0" } : Array.Empty<string>();
            using var method = e.Create(Context(kv));
            var opt = optim.SGD(method.TrainableModules.SelectMany(m => m.parameters()), 0.01, momentum: 0.9);
            var x = randn(new long[] { 4, 1, 16, 16, 16 });
            var y = (x.narrow(0, 0, 2)[.., 0] > 0.5).to_type(ScalarType.Int64);
            var before = method.InferenceNetwork.parameters().First().clone();
            var (nl, nu) = method.Composition(999, 1000, 4, 2);
            Assert.True(nl >= 1 && nl + nu <= 4, e.Name);
            var step = Trainer.Step(method, opt, x, y, 2, new TrainingContext(999, 1000, 0.01));
            Assert.True(float.IsFinite(step.Loss.item<float>()), e.Name);
            Assert.False(before.equal(method.InferenceNetwork.parameters().First()).all().item<bool>(), $"{e.Name}: no update");
        }
    }
}
