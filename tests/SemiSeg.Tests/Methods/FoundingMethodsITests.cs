using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

static class Batches
{
    public static Tensor Labels(int n, int size) => randint(0, 4, new long[] { n, size, size }).to_type(ScalarType.Int64);
    public static MethodSettings Params(params (string k, string v)[] kv) => new(kv.ToDictionary(p => p.k, p => p.v));
}

public class MutualMaskMixTests
{
    [Fact]
    public void GridMaskZeroesExactlyHalfTheBlocksEachWhole()
    {
        var m = Perturbations.GridBlockMask(32, 32, new Random(4), grid: 4, ratio: 0.5);
        int zeroBlocks = 0;
        for (int gy = 0; gy < 4; gy++)
            for (int gx = 0; gx < 4; gx++)
            {
                var block = Enumerable.Range(0, 64).Select(k => m[(gy * 8 + k / 8) * 32 + gx * 8 + k % 8]).Distinct().ToArray();
                Assert.Single(block); // a block is all 0 or all 1
                if (block[0] == 0) zeroBlocks++;
            }
        Assert.Equal(8, zeroBlocks);
        Assert.NotEqual(m, Perturbations.GridBlockMask(32, 32, new Random(5), grid: 4, ratio: 0.5));
    }

    [Fact]
    public void FeaturesComeFromTheSamePassAsTheLogits()
    {
        torch.manual_seed(1);
        using var net = new UNet2D(new UNetConfig());
        net.eval();
        var x = randn(2, 1, 32, 32);
        var (logits, high, low) = net.ForwardWithFeatures(x);
        Assert.Equal(new long[] { 2, 256, 2, 2 }, high.shape);
        Assert.Equal(new long[] { 2, 16, 32, 32 }, low.shape);
        Assert.True(logits.allclose(net.forward(x), atol: 1e-5));
    }

    [Fact]
    public void HighLowConsistencyHasTheExactValues()
    {
        // student low = 1, teacher low = 0 / 2: L1 = 1 for every pair; high: identical (cos 1) and opposite (cos −1)
        var sHigh = ones(1, 2, 1, 1); var tSame = ones(1, 2, 1, 1); var tOpp = -ones(1, 2, 1, 1);
        var (low, high) = MutualMaskMixMethod.HighLowConsistency(
            new[] { (sHigh, ones(1, 3, 2, 2)) },
            new[] { (tSame, zeros(1, 3, 2, 2)), (tOpp, full(new long[] { 1, 3, 2, 2 }, 2f)) });
        Assert.Equal(1f, low.item<float>(), 6);
        Assert.Equal(1f, high.item<float>(), 5); // mean of (1 − 1) and (1 − (−1))
    }

    [Fact]
    public void SelfTrainingStepTrainsTheStudentAndTheTeacherFollowsByEma()
    {
        torch.manual_seed(3);
        using var m = new MutualMaskMixMethod(new UNetConfig(), new MethodSettings());
        using var opt = optim.SGD(m.Student.parameters(), 0.01, momentum: 0.9);
        var x = rand(8, 1, 32, 32); var y = Batches.Labels(4, 32);
        var before = m.Student.parameters().First().clone();
        var teacherBefore = m.Teacher.parameters().First().clone();
        var step = Trainer.Step(m, opt, x, y, 4, new TrainingContext(0, 10, 0.01));
        Assert.True(step.Terms["low"].item<float>() > 0 && step.Terms["high"].item<float>() >= 0);
        var after = m.Student.parameters().First();
        Assert.False(before.allclose(after));
        // state-dict EMA with a constant α = 0.99 from the teacher's own initial weights
        Assert.True((0.99 * teacherBefore + 0.01 * after).allclose(m.Teacher.parameters().First(), atol: 1e-6));
        Assert.Throws<ArgumentException>(() => new MutualMaskMixMethod(new UNetConfig(), new MethodSettings()).Step(x, y.narrow(0, 0, 1), 1, new TrainingContext(0, 10, 0.01)));
    }
}

public class MutualMaskMixRoleTests
{
    [Fact]
    public void TeacherIsItsOwnNetworkAsTheReferenceBuildsIt()
    {
        // ACDC_M3HL_train.py: ema_model = create_model(ema=True), a second, separately initialised network
        torch.manual_seed(11);
        using var m = new MutualMaskMixMethod(new UNetConfig(), new MethodSettings());
        var s = m.Student.parameters().ToArray(); var t = m.Teacher.parameters().ToArray();
        Assert.Equal(s.Length, t.Length);
        Assert.Contains(Enumerable.Range(0, s.Length), i => s[i].numel() > 1 && !s[i].allclose(t[i]));
        Assert.All(t, p => Assert.False(p.requires_grad));
        using var copy = new MutualMaskMixMethod(new UNetConfig(), Batches.Params(("teacher_init", "copy")));
        Assert.All(copy.Student.parameters().Zip(copy.Teacher.parameters()), p => Assert.True(p.First.eq(p.Second).all().item<bool>()));
        Assert.Throws<ArgumentException>(() => new MutualMaskMixMethod(new UNetConfig(), Batches.Params(("teacher_init", "student"))));
    }

    [Fact]
    public void MixesPutTheUnlabeledImageInsideTheMaskOfOneAndOutsideTheMaskOfTheOther()
    {
        // x_u = u_a·M + l_a·(1−M), x_l = l_b·M + u_b·(1−M) (ACDC_M3HL_train.py:313-314)
        var mask = tensor(Perturbations.GridBlockMask(8, 8, new Random(2), 4, 0.5), new long[] { 1, 8, 8 });
        var inside = mask.unsqueeze(1).to_type(ScalarType.Bool);
        Tensor Const(float v) => full(new long[] { 1, 1, 8, 8 }, v);
        var (xu, xl) = MutualMaskMixMethod.Mix(Const(1), Const(2), Const(3), Const(4), mask);   // l_a, l_b, u_a, u_b
        Assert.True(xu.eq(where(inside, Const(3), Const(1))).all().item<bool>());
        Assert.True(xl.eq(where(inside, Const(2), Const(4))).all().item<bool>());
    }

    [Fact]
    public void PseudoLabelRegionsWeighUWeightAndGroundTruthRegionsOne()
    {
        // the mutual roles of the regions (ACDC_M3HL_train.py:319-320): logits that are right everywhere give ~0; one
        // wrong region at a time costs its weight: u_weight for u_a's pseudo-labels inside M on x_u and for u_b's
        // outside M on x_l, 1 for l_a's ground truth outside M on x_u and for l_b's inside M on x_l
        const int C = 4, H = 8;
        var mask = tensor(Perturbations.GridBlockMask(H, H, new Random(3), 4, 0.5), new long[] { 1, H, H });
        var inside = mask.to_type(ScalarType.Bool);
        var yA = full(new long[] { 1, H, H }, 1L); var plA = full(new long[] { 1, H, H }, 2L);
        var yB = full(new long[] { 1, H, H }, 3L); var plB = full(new long[] { 1, H, H }, 0L);
        Tensor Confident(Tensor target) => nn.functional.one_hot(target, C).permute(0, 3, 1, 2).to_type(ScalarType.Float32) * 30;
        var rightU = Confident(where(inside, plA, yA)); var rightL = Confident(where(inside, yB, plB));
        var (d0, c0) = MutualMaskMixMethod.MixedLoss(rightU, rightL, yA, yB, plA, plB, mask, 0.5);
        Assert.True(c0.item<float>() < 1e-6, $"CE {c0.item<float>()} with every region right");
        Assert.True(d0.item<float>() < 1e-3, $"Dice {d0.item<float>()} with every region right");
        // a uniform (uninformative) prediction in one region: masked CE there is ln C, times the region's weight
        var flat = zeros(1, C, H, H);
        double Ce(Tensor lu, Tensor ll) => MutualMaskMixMethod.MixedLoss(lu, ll, yA, yB, plA, plB, mask, 0.5).ce.item<float>();
        var m4 = inside.unsqueeze(1);
        Assert.Equal(0.5 * Math.Log(C), Ce(where(m4, flat, rightU), rightL), 4);            // x_u inside M: u_a pseudo-labels
        Assert.Equal(1.0 * Math.Log(C), Ce(where(m4, rightU, flat), rightL), 4);            // x_u outside M: l_a ground truth
        Assert.Equal(1.0 * Math.Log(C), Ce(rightU, where(m4, flat, rightL)), 4);            // x_l inside M: l_b ground truth
        Assert.Equal(0.5 * Math.Log(C), Ce(rightU, where(m4, rightL, flat)), 4);            // x_l outside M: u_b pseudo-labels
    }
}

public class DisplacementTests
{
    /// <summary>(1, 2, 4, 4) probabilities on a 2×2 grid: patch confidences 0.9, 0.6, 0.8, 0.7 (row-major), class 0 winning
    /// except in patch 2 where class 1 wins.</summary>
    static Tensor KnownProbs()
    {
        var p0 = new float[16];
        float[] conf = { 0.9f, 0.6f, 0.8f, 0.7f };
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
            {
                int patch = y / 2 * 2 + x / 2;
                p0[y * 4 + x] = patch == 2 ? 1 - conf[patch] : conf[patch];
            }
        var c0 = tensor(p0, new long[] { 1, 1, 4, 4 });
        return cat(new[] { c0, 1 - c0 }, 1);
    }

    [Fact]
    public void PatchScoresAreMeanConfidenceAndMeanDistribution()
    {
        var (conf, mean) = Displacement.PatchScores(KnownProbs(), 2);
        Assert.Equal(new[] { 0.9f, 0.6f, 0.8f, 0.7f }, conf[0].Select(v => MathF.Round(v, 5)));
        Assert.Equal(0.2f, mean[0][2][0], 5);
        Assert.Equal(0.8f, mean[0][2][1], 5);
        Assert.Throws<ArgumentException>(() => Displacement.PatchScores(KnownProbs(), 3));
    }

    [Fact]
    public void KlGuidedChoiceTakesTheClosestConfidentPatchForTheLeastConfident()
    {
        var (c1, m1) = Displacement.PatchScores(KnownProbs(), 2);
        // view 2 = view 1: the least confident patch is 1 (class-0 distribution 0.6/0.4); among the top-2 (patches 0
        // and 2) patch 0 (0.9/0.1) is closer in KL than patch 2 (0.2/0.8); with top-1 only patch 0 is a candidate
        Assert.Equal((1, 0), Displacement.KlGuidedChoice(c1[0], m1[0], c1[0], m1[0], 2));
        // make patch 2 the most confident in view 2 but class 1: KL still prefers patch 0 among the top 2
        Assert.Equal((1, 0), Displacement.KlGuidedChoice(c1[0], m1[0], new[] { 0.85f, 0.1f, 0.95f, 0.1f }, m1[0], 2));
        Assert.Equal((1, 2), Displacement.KlGuidedChoice(c1[0], m1[0], new[] { 0.85f, 0.1f, 0.95f, 0.1f }, m1[0], 1));
    }

    [Fact]
    public void CopyPatchMovesExactlyOneBlock()
    {
        var src = arange(16, dtype: ScalarType.Float32).reshape(1, 1, 4, 4);
        var dst = zeros(1, 1, 4, 4);
        Displacement.CopyPatch(dst, src, 0, to: 0, from: 3, grid: 2);
        var expected = tensor(new float[] { 10, 11, 0, 0, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, new long[] { 1, 1, 4, 4 });
        Assert.True(dst.eq(expected).all().item<bool>());
        var labels = arange(16, dtype: ScalarType.Int64).reshape(1, 4, 4);
        var lcopy = labels.clone();
        Displacement.CopyPatch(lcopy, labels, 0, to: 1, from: 2, grid: 2); // (B, H, W) works too
        Assert.Equal(8L, lcopy[0, 0, 2].item<long>());
        Assert.Equal(13L, lcopy[0, 1, 3].item<long>());
    }

    [Fact]
    public void LargestLowConfidenceRegionIsCappedAndNeedsTheOtherViewConfident()
    {
        // 5x5: a 3-pixel low blob (top-left, conf 0.1/0.2/0.3) and a single low pixel (bottom-right, 0.05)
        var conf = Enumerable.Repeat(0.99f, 25).ToArray();
        conf[0] = 0.1f; conf[1] = 0.2f; conf[5] = 0.3f; conf[24] = 0.05f;
        var other = Enumerable.Repeat(0.99f, 25).ToArray();
        var r = Displacement.LargestLowConfidenceRegion(conf, other, 5, 5, 0.5, 10)!;
        Assert.Equal(new[] { 0, 1, 5 }, Enumerable.Range(0, 25).Where(i => r[i]));
        var capped = Displacement.LargestLowConfidenceRegion(conf, other, 5, 5, 0.5, 2)!;
        Assert.Equal(new[] { 0, 1 }, Enumerable.Range(0, 25).Where(i => capped[i])); // the 2 least confident
        other[0] = 0.4f; // the other view is not confident there: not replaced
        var restricted = Displacement.LargestLowConfidenceRegion(conf, other, 5, 5, 0.5, 10)!;
        Assert.Equal(new[] { 1, 5 }, Enumerable.Range(0, 25).Where(i => restricted[i]));
        Assert.Null(Displacement.LargestLowConfidenceRegion(Enumerable.Repeat(0.99f, 25).ToArray(), other, 5, 5, 0.5, 10));
    }

    [Fact]
    public void CadThresholdRisesAndTheReplacementCapShrinks()
    {
        using var m = new AdaptiveDisplacementMethod(new UNetConfig(), new MethodSettings(), cad: true);
        Assert.Equal((0.80, 0.25), m.Schedule(0, 1000));
        var (tau, area) = m.Schedule(500, 1000);
        Assert.Equal(0.875, tau, 9);
        Assert.Equal((0.25 + 0.0625) / 2, area, 9);
        Assert.Equal((0.95, 0.0625), m.Schedule(1000, 1000));
    }

    [Fact]
    public void AbdIReplacesBothViewsMostConfidentPatchWithTheOtherViewsLeastConfident()
    {
        // 2×2 grid of 2×2 patches; pixel values name (view, patch): view 1 = 10 + patch, view 2 = 20 + patch
        Tensor View(int v) => tensor(new float[] { 0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3 }, new long[] { 1, 1, 4, 4 }) + 10 * v;
        var conf1 = new[] { new[] { 0.9f, 0.2f, 0.5f, 0.6f } };  // view 1: most confident patch 0, least 1
        var conf2 = new[] { new[] { 0.4f, 0.7f, 0.3f, 0.95f } }; // view 2: most confident patch 3, least 2
        var (x, y) = Displacement.AbdI(View(1), View(2), View(1).squeeze(1).to_type(ScalarType.Int64), View(2).squeeze(1).to_type(ScalarType.Int64),
            conf1, conf2, new[] { true }, 2);
        Assert.Equal(new long[] { 2, 1, 4, 4 }, x.shape); // both displaced views, for both networks
        float Patch(Tensor t, int b, int p) => t[b].flatten()[(p / 2) * 8 + (p % 2) * 2].item<float>();
        // view 1: patch 0 (its most confident) ← view 2's patch 2 (its least confident); the rest unchanged
        Assert.Equal(new[] { 22f, 11f, 12f, 13f }, Enumerable.Range(0, 4).Select(p => Patch(x, 0, p)));
        // view 2: patch 3 (its most confident) ← view 1's patch 1 (its least confident)
        Assert.Equal(new[] { 20f, 21f, 22f, 11f }, Enumerable.Range(0, 4).Select(p => Patch(x, 1, p)));
        Assert.True(y.to_type(ScalarType.Float32).eq(x.squeeze(1)).all().item<bool>()); // labels move with the images
        var (same, _) = Displacement.AbdI(View(1), View(2), View(1).squeeze(1).to_type(ScalarType.Int64), View(2).squeeze(1).to_type(ScalarType.Int64),
            conf1, conf2, new[] { false }, 2);
        Assert.True(same.eq(cat(new[] { View(1), View(2) }, 0)).all().item<bool>()); // not drawn: untouched
    }

    [Fact]
    public void AbdStrongViewCutsOutABoxWhoseLabelsBecomeBackground()
    {
        // all-foreground labels: the pixels the strong view sets to 0 are exactly its cut-out box
        var images = full(new long[] { 8, 1, 32, 32 }, 0.5f);
        var labels = ones(new long[] { 8, 32, 32 }, dtype: ScalarType.Int64);
        var (view, strongLabels) = AdaptiveDisplacementMethod.StrongView(images, labels, new Random(11));
        Assert.Equal(images.shape, view.shape);
        Assert.True(view.min().item<float>() >= 0 && view.max().item<float>() <= 1);
        int cut = 0;
        for (int i = 0; i < 8; i++)
        {
            var zero = strongLabels[i].eq(0);
            long area = zero.sum().item<long>();
            if (area == 0) continue;
            cut++;
            var rows = zero.any(1).nonzero().flatten(); var cols = zero.any(0).nonzero().flatten();
            long bh = rows.max().item<long>() - rows.min().item<long>() + 1, bw = cols.max().item<long>() - cols.min().item<long>() + 1;
            Assert.Equal(bh * bw, area); // one axis-aligned box
            Assert.InRange(area, 1, (long)(0.4 * 1024) + 1);
            // inside the box the fill is random 0/1 before the jitter: the grey 0.5 image is no longer uniform there
            Assert.True(view[i, 0].masked_select(zero).std().item<float>() > 0.05f);
        }
        Assert.InRange(cut, 1, 7); // p 0.5 per image
    }

    [Fact]
    public void AbdRTrainsEachNetworkOnTheOthersFreshPredictionOfTheDisplacedImages()
    {
        var gen = new Generator(3);
        var o = randn(new long[] { 4, 4, 8, 8 }, generator: gen); var labels = Batches.Labels(2, 8);
        var e1 = randn(new long[] { 4, 4, 8, 8 }, generator: gen); var e2 = randn(new long[] { 4, 4, 8, 8 }, generator: gen);
        var t = AdaptiveDisplacementMethod.Losses(o, o, labels, labels, 2, null, null, null, e1, e2, 0.1, 2.0);
        var expected = SemiSeg.Losses.SegmentationLosses.Dice(softmax(e1, 1), e2.argmax(1)) + SemiSeg.Losses.SegmentationLosses.Dice(softmax(e2, 1), e1.argmax(1));
        Assert.Equal(expected.item<float>(), t["abd_r"].item<float>(), 6);
        Assert.False(t.ContainsKey("abd_i"));
        // the targets are detached: the gradient of abd_r w.r.t. e2 comes only from Dice(softmax e2, argmax e1)
        var e2g = e2.clone().requires_grad_(true);
        AdaptiveDisplacementMethod.Losses(o, o, labels, labels, 2, null, null, null, e1, e2g, 0.1, 2.0)["abd_r"].backward();
        var only = e2.clone().requires_grad_(true);
        SemiSeg.Losses.SegmentationLosses.Dice(softmax(only, 1), e1.argmax(1)).backward();
        Assert.True(e2g.grad!.allclose(only.grad!, 1e-5, 1e-7));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AbdAndCadStepsTrainBothNetworksWithEveryTerm(bool cad)
    {
        torch.manual_seed(5);
        using var m = new AdaptiveDisplacementMethod(new UNetConfig(), Batches.Params(("abd_i_p", "1")), cad);
        var step = m.Step(rand(8, 1, 32, 32), Batches.Labels(4, 32), 4, new TrainingContext(29000, 30000, 0.01));
        Assert.DoesNotContain("abd_i", step.Terms.Keys); // ABD-I stops after ⅔ of training
        step = m.Step(rand(8, 1, 32, 32), Batches.Labels(4, 32), 4, new TrainingContext(100, 30000, 0.01));
        foreach (var k in new[] { "sup", "abd_i", "cps", cad ? "llcr" : "abd_r" }) Assert.True(step.Terms[k].item<float>() > 0, k);
        step.Loss.backward();
        Assert.True(m.Net1.parameters().First().grad!.abs().sum().item<float>() > 0);
        Assert.True(m.Net2.parameters().First().grad!.abs().sum().item<float>() > 0);
    }
}

public class AnatomicalContrastTests
{
    [Fact]
    public void IsdLossIsTheKlBetweenTheTwoSimilarityDistributions()
    {
        var queue = eye(3);
        var q = tensor(new float[] { 1, 0, 0 }).reshape(1, 3);
        // same embedding and same temperature: no divergence
        Assert.Equal(0f, AnatomicalContrastiveDistillationMethod.IsdLoss(q, q, queue, 0.1, 0.1).item<float>(), 6);
        // by hand: student logits [10, 0, 0] (T 0.1), teacher logits [0, 100, 0] (T 0.01)
        var k = tensor(new float[] { 0, 1, 0 }).reshape(1, 3);
        double zS = Math.Exp(10) + 2, zT = Math.Exp(100) + 2;
        double[] pS = { Math.Exp(10) / zS, 1 / zS, 1 / zS }, pT = { 1 / zT, Math.Exp(100) / zT, 1 / zT };
        double kl = Enumerable.Range(0, 3).Sum(i => pT[i] * Math.Log(pT[i] / pS[i]));
        Assert.Equal(kl, AnatomicalContrastiveDistillationMethod.IsdLoss(q, k, queue, 0.1, 0.01).item<float>(), 3);
    }

    [Fact]
    public void QueueWrapsAroundOldestFirst()
    {
        using var mem = new IsdMemory(3, 2, 2);
        mem.Enqueue(tensor(new float[] { 1, 0, 0, 1 }).reshape(2, 2), tensor(new float[] { 1, 1, 2, 2 }).reshape(2, 2));
        mem.Enqueue(tensor(new float[] { 5, 5, 6, 6 }).reshape(2, 2), tensor(new float[] { 7, 7, 8, 8 }).reshape(2, 2));
        // slots: 0 ← (1,0) then (6,6); 1 ← (0,1); 2 ← (5,5)
        Assert.Equal(new float[] { 6, 6, 0, 1, 5, 5 }, mem.Global.data<float>().ToArray());
        Assert.Equal(new float[] { 8, 8, 2, 2, 7, 7 }, mem.Local.data<float>().ToArray());
        Assert.Equal(1L, mem.get_buffer("pointer")!.item<long>());
    }

    [Fact]
    public void RegionalContrastHasTheClosedFormOnSeparatedFeatures()
    {
        // 2 classes, features e0 for class 0 and e1 for class 1, all hard (prob 0.5 < 0.97): every query has cosine 1
        // with its prototype and 0 with each of the N negatives: CE = −log(e^{1/τ} / (e^{1/τ} + N))
        var target = tensor(new long[] { 0, 0, 1, 1 }).reshape(1, 2, 2);
        var rep = stack(new[] { target.eq(0).to_type(ScalarType.Float32), target.eq(1).to_type(ScalarType.Float32) }, 1);
        var prob = full(new long[] { 1, 2, 2, 2 }, 0.5f);
        var valid = ones(1, 2, 2, dtype: ScalarType.Bool);
        double tau = 0.5; int n = 16;
        var loss = AnatomicalContrastiveDistillationMethod.RegionalContrast(rep, target, valid, prob, 2, 0.97, tau, 8, n, new Random(1));
        double expected = -Math.Log(Math.Exp(1 / tau) / (Math.Exp(1 / tau) + n));
        Assert.Equal(expected, loss.item<float>(), 4);
        // one class only: nothing to contrast
        Assert.Equal(0f, AnatomicalContrastiveDistillationMethod.RegionalContrast(rep, zeros_like(target), valid, prob, 2, 0.97, tau, 8, n, new Random(1)).item<float>());
        // confident pixels are not hard queries: with prob 1 nothing is queried
        Assert.Equal(0f, AnatomicalContrastiveDistillationMethod.RegionalContrast(rep, target, valid, ones(1, 2, 2, 2), 2, 0.97, tau, 8, n, new Random(1)).item<float>());
    }

    [Fact]
    public void PretrainingDistilsThenStageTwoStartsFromThePretrainedStudentInBothNetworks()
    {
        torch.manual_seed(7);
        using var m = new AnatomicalContrastiveDistillationMethod(new UNetConfig(), Batches.Params(("pretrain_iterations", "2")));
        using var opt = optim.SGD(m.TrainableModules.SelectMany(x => x.parameters()), 0.01, momentum: 0.9);
        var x = rand(8, 1, 32, 32); var y = Batches.Labels(4, 32);
        var s0 = Trainer.Step(m, opt, x, y, 4, new TrainingContext(0, 10, 0.01));
        Assert.True(s0.Terms["isd_global"].item<float>() > 0 && s0.Terms["isd_local"].item<float>() > 0);
        Trainer.Step(m, opt, x, y, 4, new TrainingContext(1, 10, 0.01));
        // reference: model and ema_model both load the student's iter_30000.pth
        var studentAtSwitch = m.Student.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter.clone());
        var headsAtSwitch = m.Heads.parameters().First().clone();
        Assert.False(m.Teacher.parameters().First().allclose(studentAtSwitch.First().Value));
        var s2 = m.Step(x, y, 4, new TrainingContext(2, 10, 0.01));
        // (parameters: the teacher's train-mode forward in the step has already moved its BatchNorm statistics)
        foreach (var (k, v) in m.Teacher.named_parameters()) Assert.True(v.eq(studentAtSwitch[k]).all().item<bool>(), k);
        foreach (var (k, v) in m.Student.named_parameters()) Assert.True(v.eq(studentAtSwitch[k]).all().item<bool>(), k);
        Assert.True(m.TeacherHeads.parameters().First().eq(headsAtSwitch).all().item<bool>());
        Assert.True(s2.Terms.ContainsKey("contrast") && s2.Terms.ContainsKey("unsup"));
        // loss = sup + unsup + 0.01·contrast (train_2D_action.py --k1 0.01)
        Assert.Equal(0.01, m.ContrastWeight);
        float expected = s2.Terms["sup"].item<float>() + s2.Terms["unsup"].item<float>() + 0.01f * s2.Terms["contrast"].item<float>();
        Assert.Equal(expected, s2.Loss.item<float>(), 5);
        s2.Loss.backward();
        Assert.True(m.Student.parameters().First().grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void StageTwoCutMixBoxCoversHalfTheImageAsTheReferences()
    {
        var rng = new Random(4);
        for (int k = 0; k < 50; k++)
        {
            var m = AnatomicalContrastiveDistillationMethod.HalfImageBox(32, 48, rng);
            int area = (int)m.Sum();
            var rows = Enumerable.Range(0, 32).Where(y => Enumerable.Range(0, 48).Any(x => m[y * 48 + x] == 1)).ToArray();
            var cols = Enumerable.Range(0, 48).Where(x => Enumerable.Range(0, 32).Any(y => m[y * 48 + x] == 1)).ToArray();
            Assert.Equal(rows.Length * cols.Length, area);           // one box
            Assert.InRange(cols.Length, 25, 47);                      // w ~ U{W/2+1, …, W−1}
            Assert.InRange(Math.Abs(area - 32 * 48 / 2), 0, cols.Length / 2); // h = round(HW/2 / w)
        }
    }

    [Fact]
    public void UnsupervisedLossWeighsImagesByConfidentShareAndAveragesOverPositiveLossPixels()
    {
        // image 0: pixel 0 certain (CE exactly 0 in float32), pixels 1-3 at logits (1, 0) → CE ln(1+e^-1); 3 of 4 confident
        // image 1: all 4 pixels CE ln 2; 1 of 4 confident
        var logits = tensor(new float[] { 200, 1, 1, 1, 0, 0, 0, 0, /* image 1 */ 0, 0, 0, 0, 0, 0, 0, 0 }, new long[] { 2, 2, 2, 2 });
        var pseudo = zeros(new long[] { 2, 2, 2 }, dtype: ScalarType.Int64);
        var conf = tensor(new float[] { 0.99f, 0.99f, 0.99f, 0.5f, 0.99f, 0.5f, 0.5f, 0.5f }, new long[] { 2, 2, 2 });
        double a = Math.Log(1 + Math.Exp(-1)), b = Math.Log(2);
        double expected = (0.75 * 3 * a + 0.25 * 4 * b) / 7; // 7 pixels with CE > 0
        Assert.Equal(expected, AnatomicalContrastiveDistillationMethod.UnsupervisedLoss(logits, pseudo, conf, 0.97).item<float>(), 5);
    }

    [Fact]
    public void StageTwoFromEmaSwitchRestoresTheOldHandOver()
    {
        torch.manual_seed(8);
        var settings = Batches.Params(("pretrain_iterations", "2"), ("stage2_from_ema", "true"), ("contrast_weight", "1"));
        using var m = new AnatomicalContrastiveDistillationMethod(new UNetConfig(), settings);
        settings.EnsureAllUsed("action");
        using var opt = optim.SGD(m.TrainableModules.SelectMany(x => x.parameters()), 0.01, momentum: 0.9);
        // (the EMA's warm-up makes the teacher equal to the student after the first step; the second separates them)
        for (int t = 0; t < 2; t++) Trainer.Step(m, opt, rand(8, 1, 32, 32), Batches.Labels(4, 32), 4, new TrainingContext(t, 10, 0.01));
        var teacher = m.Teacher.parameters().First().clone();
        Assert.False(teacher.eq(m.Student.parameters().First()).all().item<bool>());
        m.SwitchToStageTwo();
        Assert.True(teacher.eq(m.Student.parameters().First()).all().item<bool>());
        Assert.True(teacher.eq(m.Teacher.parameters().First()).all().item<bool>());
        Assert.Equal(1.0, m.ContrastWeight);
    }
}
