using System.Text.Json;
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
    public void SelfPacedLossIsDividedByThePositiveCountNotByTheWeights()
    {
        // four embeddings, two positive pairs of different difficulty: (0,1) identical, (2,3) opposite. The reference
        // (contrast_loss2.py SelfPacedSupConLoss): per anchor Σ_j w_ij·l_ij / |P(i)|, then the mean over anchors; a
        // pair whose weight is 0 still counts in |P(i)|, so down-weighting lowers the loss instead of re-normalising it
        var z = tensor(new float[] { 1, 0, 1, 0, 0, 1, -1, 0 }).reshape(4, 2);
        var keys = new long[] { 0, 0, 1, 1 };
        var sim = new double[,] { { 1, 1, 0, -1 }, { 1, 1, 0, -1 }, { 0, 0, 1, 0 }, { -1, -1, 0, 1 } };
        double Lij(int i, int j) => Math.Log(Enumerable.Range(0, 4).Where(k => k != i).Sum(k => Math.Exp(sim[i, k]))) - sim[i, j];
        var pairs = new[] { (0, 1), (1, 0), (2, 3), (3, 2) }; // one positive per anchor
        double gamma = 3.0;
        double expected = pairs.Average(p => Math.Max(0, 1 - Lij(p.Item1, p.Item2) / gamma) * Lij(p.Item1, p.Item2));
        Assert.Equal(expected, MetaLabelContrastMethod.SelfPacedSupCon(z, keys, 1.0, gamma, W.Soft).item<float>(), 5);
        double weightNormalised = pairs.Sum(p => Math.Max(0, 1 - Lij(p.Item1, p.Item2) / gamma) * Lij(p.Item1, p.Item2)) / pairs.Sum(p => Math.Max(0, 1 - Lij(p.Item1, p.Item2) / gamma));
        Assert.True(Math.Abs(expected - weightNormalised) > 0.1, $"{expected} vs {weightNormalised}: the example must tell the two normalisations apart");
        double plain = pairs.Average(p => Lij(p.Item1, p.Item2));
        Assert.Equal(plain, MetaLabelContrastMethod.SelfPacedSupCon(z, keys, 1.0, double.PositiveInfinity, W.Soft).item<float>(), 5);
        // an anchor with two positives averages them: keys 0,0,0,1 give anchor 0 the pairs (0,1) and (0,2)
        var keys3 = new long[] { 0, 0, 0, 1 };
        double a0 = (Lij(0, 1) + Lij(0, 2)) / 2, a1 = (Lij(1, 0) + Lij(1, 2)) / 2, a2 = (Lij(2, 0) + Lij(2, 1)) / 2;
        Assert.Equal((a0 + a1 + a2) / 3, MetaLabelContrastMethod.SelfPacedSupCon(z, keys3, 1.0, double.PositiveInfinity, W.Hard).item<float>(), 5);
    }

    static Tensor Floats(JsonElement e) =>
        tensor(e.GetProperty("data").EnumerateArray().Select(v => (float)v.GetDouble()).ToArray(), e.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray());

    [Fact]
    public void SupConSelfPacedAndKindWeightingMatchOurTranscriptionOfTheReference()
    {
        // Fixtures/fidelity/meta_contrast_losses.py: contrast_loss2.py SupConLoss1 / SelfPacedSupConLoss and
        // weighted_average_iter on fixed projections of a 4-scan x 3-partition batch, in float64
        var f = FidelityFixture.Load("meta_contrast.json");
        double t = f.GetProperty("temperature").GetDouble();
        var plain = new List<Tensor>(); var paced = new List<Tensor>(); var importance = new List<double>();
        foreach (var kind in f.GetProperty("kinds").EnumerateArray().Select(k => k.GetString()!))
        {
            var k = f.GetProperty(kind);
            var target = k.GetProperty("target").GetProperty("data").EnumerateArray().Select(v => v.GetInt64()).ToArray();
            var z = cat(new[] { Floats(k.GetProperty("f1")), Floats(k.GetProperty("f2")) }, 0);   // [feat1; feat2], keys repeated
            var keys = target.Concat(target).ToArray();
            var mode = k.GetProperty("mode").GetString() == "hard" ? W.Hard : W.Soft;
            var sc = MetaLabelContrastMethod.SelfPacedSupCon(z, keys, t, double.PositiveInfinity, mode);
            var sp = MetaLabelContrastMethod.SelfPacedSupCon(z, keys, t, k.GetProperty("gamma").GetDouble(), mode);
            Assert.Equal(k.GetProperty("supcon").GetDouble(), sc.item<float>(), 1e-5);
            Assert.Equal(k.GetProperty("selfpaced").GetDouble(), sp.item<float>(), 1e-5);
            plain.Add(sc); paced.Add(sp); importance.Add(k.GetProperty("importance").GetDouble());
        }
        Assert.Equal(f.GetProperty("combined_supcon").GetDouble(), MetaLabelContrastMethod.CombineKinds(plain, importance).item<float>(), 1e-5);
        Assert.Equal(f.GetProperty("combined_selfpaced").GetDouble(), MetaLabelContrastMethod.CombineKinds(paced, importance).item<float>(), 1e-5);
    }

    [Fact]
    public void DefaultKindsCarryTheReferencesImportanceAndLeakyProjector()
    {
        using var m = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings());
        Assert.Equal(new[] { ("partition", 1.0), ("patient", 0.1), ("cycle", 0.1) }, m.Kinds);
        Assert.Contains(m.Projectors[0].modules(), x => x is StableLeakyReLU r && r.NegativeSlope == 0.01);
        Assert.Null(m.ScanGrouped);                                          // fine-tuning: ordinary batches
        using var pre = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string> { ["supervised_weight"] = "0", ["scans_per_batch"] = "4" }));
        Assert.Equal(new ScanGroupedBatches(4, 3), pre.ScanGrouped);       // pre-training: the reference's batches
    }

    /// <summary>A synthetic training set: patients x 2 phases, slice counts 5..11 (ACDC-like).</summary>
    static List<MetaLabels> Scans(int patients)
    {
        var meta = new List<MetaLabels>();
        for (int p = 0; p < patients; p++)
            foreach (var ph in new[] { "frame01", "frame02" })
            {
                int count = 5 + (p * 3 + ph.Length) % 7;
                for (int z = 0; z < count; z++) meta.Add(new MetaLabels($"patient{p:000}", ph, z, count));
            }
        return meta;
    }

    static void AssertEveryAnchorHasAnotherSlicePositivePerKind(MetaLabelContrastMethod m, IReadOnlyList<MetaLabels> batch, string where)
    {
        foreach (var (kind, _) in m.Kinds)
        {
            var keys = m.Keys(kind, batch);
            for (int i = 0; i < keys.Length; i++)
                Assert.True(keys.Where((k, j) => j != i && k == keys[i]).Any(), $"{where}: slice {i} ({batch[i]}) has no other slice with its {kind} in the batch");
        }
    }

    [Fact]
    public void EveryAnchorOfAScanGroupedBatchHasAPositiveOfEveryKind()
    {
        // not counting its own second view: another slice of the batch shares its partition, its patient and its phase
        var meta = Scans(12);
        using var m = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string> { ["supervised_weight"] = "0" }));
        var sampler = new ScanGroupedBatchSampler(meta, scansPerBatch: 4, partitions: 3, seed: 7);
        for (long b = 0; b < 200; b++)
        {
            var (labeled, idx) = sampler.Batch(b);
            Assert.Empty(labeled);
            var batch = idx.Select(i => meta[i]).ToList();
            Assert.Equal(12, batch.Count);                                                     // 4 scans x 3 partitions
            Assert.Equal(4, batch.Select(x => (x.Patient, x.Phase)).Distinct().Count());
            Assert.All(batch.GroupBy(x => (x.Patient, x.Phase)), g => Assert.Equal(new[] { 0, 1, 2 }, g.Select(x => x.PositionBucket(3)).OrderBy(x => x)));
            AssertEveryAnchorHasAnotherSlicePositivePerKind(m, batch, $"batch {b}");
        }
        Assert.Equal(sampler.Batch(13).unlabeled, new ScanGroupedBatchSampler(meta, 4, 3, 7).Batch(13).unlabeled); // resumable
        Assert.NotEqual(sampler.Batch(13).unlabeled, sampler.Batch(14).unlabeled);
        Assert.Throws<ArgumentException>(() => new ScanGroupedBatchSampler(meta, 25, 3, 7));    // only 24 scans
    }

    [SkippableFact]
    public void PretrainingBatchesOnAcdcComeFromAllTrainingSlicesWithPositivesOfEveryKind()
    {
        var root = SharedData.AcdcRoot();
        Skip.If(root == null, SharedData.MissingMessage);
        var manifest = AcdcDataset.Load(root!, 3);
        var all = manifest.Labeled.Concat(manifest.Unlabeled).Select(s => s.Meta).ToList();
        using var m = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string> { ["supervised_weight"] = "0" }));
        Assert.Empty(m.FitToData(all));                                               // every kind tells ACDC slices apart
        var sampler = new ScanGroupedBatchSampler(all, 10, 3, 1337);
        Assert.Equal(140, sampler.ScanCount);                                         // 70 training patients x ED/ES
        var labeledPatients = manifest.Labeled.Select(s => s.Meta.Patient).ToHashSet();
        int fromLabeled = 0, total = 0;
        for (long b = 0; b < 100; b++)
        {
            var batch = sampler.Batch(b).unlabeled.Select(i => all[i]).ToList();
            Assert.Equal(30, batch.Count);
            AssertEveryAnchorHasAnotherSlicePositivePerKind(m, batch, $"ACDC batch {b}");
            fromLabeled += batch.Count(x => labeledPatients.Contains(x.Patient)); total += batch.Count;
        }
        // the 3 labeled patients are 3 of 70, not half of every batch as with the two-stream sampler
        Assert.InRange(fromLabeled / (double)total, 0.0, 0.15);
    }

    [Fact]
    public void KindsThatTakeOneValueOnTheDataAreSwitchedOffByName()
    {
        // 2D images (HC18, PSFHS, own data): one slice per image, no phase: partition and cycle would make every pair positive
        var images = Enumerable.Range(0, 20).Select(i => new MetaLabels($"subject{i / 2}", "", 0, 1)).ToList();
        using var m = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings());
        var warnings = m.FitToData(images);
        Assert.Equal(2, warnings.Count);
        Assert.Contains("'partition'", warnings[0]);
        Assert.Contains("'cycle'", warnings[1]);
        Assert.Equal(new[] { ("patient", 0.1) }, m.Kinds);
        Assert.Single(m.Projectors);
        // nothing left that tells the images apart: a clear error that names the way out
        var one = Enumerable.Range(0, 4).Select(_ => new MetaLabels("s", "", 0, 1)).ToList();
        using var m2 = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings());
        Assert.Contains("self=true", Assert.Throws<ArgumentException>(() => m2.FitToData(one)).Message);
        using var m3 = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string> { ["self"] = "true" }));
        m3.FitToData(one);
        Assert.Equal(new[] { ("self", 1.0) }, m3.Kinds);
    }

    [Fact]
    public void FineTuningContrastsOnlyTheUnlabeledImages()
    {
        // reference hooks/infonce.py: the contrastive term takes the unlabeled part of the batch only. With the labeled
        // image changed, the contrastive terms stay the same; the supervised term sees it
        torch.manual_seed(5);
        using var m = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings());
        ((ITrainableMethod)m).Train(false); // BatchNorm in eval: the labeled image would otherwise move the batch statistics
        var meta = new[] { new MetaLabels("p1", "ED", 0, 9), new MetaLabels("p2", "ED", 0, 9), new MetaLabels("p2", "ES", 8, 9), new MetaLabels("p3", "ED", 4, 9) };
        var x = rand(4, 1, 32, 32);
        var y = randint(0, 4, new long[] { 1, 32, 32 }).to_type(ScalarType.Int64);
        var ctx = new TrainingContext(5, 10, 0.01) { Meta = meta };
        var a = m.Step(x, y, 1, ctx);
        var x2 = x.clone(); x2[0] = rand(1, 32, 32);
        var b = m.Step(x2, y, 1, ctx);
        Assert.Equal(a.Terms["supcon"].item<float>(), b.Terms["supcon"].item<float>(), 5);
        Assert.NotEqual(a.Terms["sup"].item<float>(), b.Terms["sup"].item<float>());
        Assert.Equal((float)Math.Log(2 * 3 - 1), a.Terms["supcon_chance"].item<float>(), 5); // 3 unlabeled x 2 views
        Assert.True(a.Terms["supcon_shuffled"].item<float>() >= a.Terms["supcon_chance"].item<float>() - 1e-5);
    }

    [Fact]
    public void ShuffledChanceIsTheMeanPairLossAndLnOfTheOthersWhenAllAreEqual()
    {
        // equal similarities: ln(2N − 1) exactly; spread similarities: the mean over k ≠ i of l_ik
        var same = ones(5, 3) / Math.Sqrt(3);
        Assert.Equal(Math.Log(4), MetaLabelContrastMethod.ShuffledChance(same, 0.07).item<float>(), 4);
        var z = tensor(new float[] { 1, 0, 1, 0, 0, 1, -1, 0 }).reshape(4, 2);
        var sim = new double[,] { { 1, 1, 0, -1 }, { 1, 1, 0, -1 }, { 0, 0, 1, 0 }, { -1, -1, 0, 1 } };
        double expected = Enumerable.Range(0, 4).Average(i =>
        {
            var others = Enumerable.Range(0, 4).Where(k => k != i).ToArray();
            double lse = Math.Log(others.Sum(k => Math.Exp(sim[i, k])));
            return others.Average(k => lse - sim[i, k]);
        });
        Assert.Equal(expected, MetaLabelContrastMethod.ShuffledChance(z, 1.0).item<float>(), 5);
    }

    [Fact]
    public void SelfPacedOffTrainsOnThePlainSupConLoss()
    {
        // self_paced=false is the reference's `infonce` pre-training: every positive pair weighs 1 (γ = ∞), so the
        // training loss is the logged plain SupCon; with the default self-paced weights (γ(0) = 5) it is smaller
        torch.manual_seed(6);
        var meta = new[] { new MetaLabels("p1", "ED", 0, 9), new MetaLabels("p1", "ED", 8, 9), new MetaLabels("p2", "ED", 1, 9), new MetaLabels("p2", "ED", 7, 9) };
        var x = rand(4, 1, 32, 32);
        var none = zeros(new long[] { 0, 32, 32 }, ScalarType.Int64);
        MethodStep Step(bool selfPaced)
        {
            torch.manual_seed(7); // same initial weights for both
            using var m = new MetaLabelContrastMethod(new UNetConfig(), new MethodSettings(new Dictionary<string, string>
            { ["patient"] = "false", ["cycle"] = "false", ["supervised_weight"] = "0", ["contrast_weight"] = "1", ["self_paced"] = selfPaced ? "true" : "false" }));
            ((ITrainableMethod)m).Train(false);
            return m.Step(x, none, 0, new TrainingContext(0, 10, 1e-3) { Meta = meta });
        }
        var plain = Step(false);
        Assert.Equal(plain.Terms["supcon"].item<float>(), plain.Loss.item<float>(), 5);
        var paced = Step(true);
        Assert.Equal(plain.Terms["supcon"].item<float>(), paced.Terms["supcon"].item<float>(), 5);
        // a fresh network's embeddings are nearly equal: every pair's l is about the plain loss L = ln 7, so each weighs
        // 1 − L/5 and the self-paced loss is about L·(1 − L/5)
        double l = plain.Loss.item<float>();
        Assert.Equal(Math.Log(7), l, 2);
        Assert.Equal(l * (1 - l / 5), paced.Loss.item<float>(), 2);
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
