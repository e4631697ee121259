using SemiSeg.Inference;
using SemiSeg.Data;
using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;
using W = SemiSeg.Methods.MetaLabelContrastMethod.Weighting;

namespace SemiSeg.Tests.Methods;

public class MetaLabelContrastTests
{
    [Fact]
    public void SupConMatchesTheFormulaAndSelfPacingDropsHardPairs()
    {
        // e0 = e1 = (1, 0), e2 = (0, 1); keys 0, 0, 1; T = 1: l_01 = l_10 = log(e + 1) − 1, anchor 2 has no positive
        var z = tensor(new float[] { 1, 0, 1, 0, 0, 1 }).reshape(3, 2);
        double l = Math.Log(Math.E + 1) - 1;
        Assert.Equal(l, MetaLabelContrastMethod.SelfPacedSupCon(z, new long[] { 0, 0, 1 }, 1.0, double.PositiveInfinity, W.Soft).item<float>(), 5);
        Assert.Equal(0f, MetaLabelContrastMethod.SelfPacedSupCon(z, new long[] { 0, 0, 1 }, 1.0, 0.3, W.Hard).item<float>());
        Assert.Equal(l, MetaLabelContrastMethod.SelfPacedSupCon(z, new long[] { 0, 0, 1 }, 1.0, 0.4, W.Hard).item<float>(), 5);
        Assert.Equal(0f, MetaLabelContrastMethod.SelfPacedSupCon(z, new long[] { 0, 1, 2 }, 1.0, double.PositiveInfinity, W.Soft).item<float>());
    }

    [Fact]
    public void SoftWeightsAverageEasyPairsMoreThanHardOnes()
    {
        // four embeddings, two positive pairs of different difficulty: (0,1) identical, (2,3) orthogonal
        var z = tensor(new float[] { 1, 0, 1, 0, 0, 1, -1, 0 }).reshape(4, 2);
        var keys = new long[] { 0, 0, 1, 1 };
        var sim = new double[,] { { 1, 1, 0, -1 }, { 1, 1, 0, -1 }, { 0, 0, 1, 0 }, { -1, -1, 0, 1 } };
        double Lij(int i, int j) => Math.Log(Enumerable.Range(0, 4).Where(k => k != i).Sum(k => Math.Exp(sim[i, k]))) - sim[i, j];
        var pairs = new[] { (0, 1), (1, 0), (2, 3), (3, 2) };
        double gamma = 3.0;
        double num = 0, den = 0;
        foreach (var (i, j) in pairs) { double w = Math.Max(0, 1 - Lij(i, j) / gamma); num += w * Lij(i, j); den += w; }
        Assert.Equal(num / den, MetaLabelContrastMethod.SelfPacedSupCon(z, keys, 1.0, gamma, W.Soft).item<float>(), 5);
        double plain = pairs.Average(p => Lij(p.Item1, p.Item2));
        Assert.True(num / den < plain); // the hard pair counts less
    }

    [Fact]
    public void GammaGrowsFromBeginToEndAsASquareRoot()
    {
        Assert.Equal(5.0, MetaLabelContrastMethod.Gamma(5, 60, 0, 100));
        Assert.Equal(5 + 55 * 0.5, MetaLabelContrastMethod.Gamma(5, 60, 25, 100), 9);
        Assert.Equal(60.0, MetaLabelContrastMethod.Gamma(5, 60, 100, 100));
        Assert.True(double.IsPositiveInfinity(MetaLabelContrastMethod.Gamma(double.PositiveInfinity, double.PositiveInfinity, 3, 100)));
    }

    [Fact]
    public void MetaLabelKeysComeFromPositionPatientAndPhase()
    {
        using var m = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings());
        var meta = new[] { new MetaLabels("p1", "ED", 0, 9), new MetaLabels("p1", "ES", 8, 9), new MetaLabels("p2", "ED", 4, 9) };
        Assert.Equal(new long[] { 0, 2, 1 }, m.Keys("partition", meta));
        Assert.Equal(new long[] { 0, 0, 1 }, m.Keys("patient", meta));
        Assert.Equal(new long[] { 0, 1, 0 }, m.Keys("cycle", meta));
        var step = m.Step(rand(3, 1, 32, 32), randint(0, 4, new long[] { 1, 32, 32 }).to_type(ScalarType.Int64), 1, new TrainingContext(0, 10, 0.01) { Meta = meta });
        Assert.True(step.Terms.ContainsKey("partition") && step.Terms.ContainsKey("sup"));
        step.Loss.backward();
        Assert.Equal(3, m.Projectors.Count); // one head per kind
        Assert.True(m.Projectors[0].parameters().First().grad!.abs().sum().item<float>() > 0);
        Assert.Throws<InvalidOperationException>(() => m.Step(rand(3, 1, 32, 32), randint(0, 4, new long[] { 1, 32, 32 }).to_type(ScalarType.Int64), 1, new TrainingContext(0, 10, 0.01)));
    }

    [Fact]
    public void ContrastivePretrainingLearnsToTellSlicesApart()
    {
        // SimCLR on a fixed batch of 8 distinct images (two views each): the loss must fall well below chance, ln(2N-1).
        // With the SSL4MIS UNet's dropout in the encoder (dropout=true) it stayed near chance: 3.14 -> 2.27 here.
        torch.manual_seed(3);
        using var m = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string>
        { ["partition"] = "false", ["patient"] = "false", ["cycle"] = "false", ["self"] = "true", ["supervised_weight"] = "0", ["contrast_weight"] = "1" }));
        var images = randn(8, 1, 32, 32) * linspace(0.2, 2.0, 8).reshape(8, 1, 1, 1) + linspace(-1, 1, 8).reshape(8, 1, 1, 1);
        var meta = Enumerable.Range(0, 8).Select(i => new MetaLabels($"p{i}", "ED", i, 8)).ToArray();
        var parameters = m.TrainableModules.SelectMany(x => x.parameters()).ToList();
        using var opt = optim.Adam(parameters, 1e-3);
        double first = 0, last = 0;
        for (int it = 0; it < 60; it++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var step = m.Step(images, zeros(new long[] { 0, 32, 32 }, ScalarType.Int64), 0, new TrainingContext(it, 60, 1e-3) { Meta = meta });
            step.Loss.backward();
            opt.step();
            double l = step.Loss.item<float>();
            if (it == 0) first = l;
            last = l;
        }
        Assert.InRange(first, 2.0, 4.0);
        Assert.True(last < 0.5 * Math.Log(15), $"SimCLR loss {first:0.###} -> {last:0.###} (chance {Math.Log(15):0.###})");
    }

    [Fact]
    public void InitEncoderCopiesTheEncoderAndLeavesTheDecoder()
    {
        using var dir = new TempDir();
        torch.manual_seed(1);
        using var source = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings());
        Checkpoint.Save(dir["pre.ckpt"], new CheckpointMeta { PatchHeight = 32, PatchWidth = 32 }, source, null);
        using var target = new MeanTeacherMethod(new UNetConfig(), new MethodSettings());
        var decoderBefore = target.Student.named_parameters().First(p => p.name.StartsWith("ups.")).parameter.clone();
        int copied = Trainer.LoadEncoder(dir["pre.ckpt"], target);
        Assert.True(copied > 0);
        foreach (var net in new[] { target.Student, target.Teacher })
        {
            var enc = net.named_parameters().First(p => p.name.StartsWith("down.")).parameter;
            Assert.True(enc.allclose(source.Network.named_parameters().First(p => p.name.StartsWith("down.")).parameter));
        }
        Assert.True(decoderBefore.allclose(target.Student.named_parameters().First(p => p.name.StartsWith("ups.")).parameter));
        using var wide = new SupervisedMethod(new UNetConfig { Features = new[] { 8, 16, 32, 64, 128 } }, new MethodSettings());
        Assert.Throws<InvalidDataException>(() => Trainer.LoadEncoder(dir["pre.ckpt"], wide));
    }
}
