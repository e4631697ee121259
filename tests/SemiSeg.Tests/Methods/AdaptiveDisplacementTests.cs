using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

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
