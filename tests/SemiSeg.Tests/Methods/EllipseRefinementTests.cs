using SemiSeg.Geometry;
using SemiSeg.Evaluation;
using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

public class EllipseRefinementTests
{
    [Fact]
    public void BoundaryConsistencyIsOneForTheSameContourAndZeroForDisjointOnes()
    {
        var a = new Ellipse(20, 20, 10, 7, 0.2).Rasterize(40, 60);
        var far = new Ellipse(45, 20, 8, 6, 0).Rasterize(40, 60);
        Assert.Equal(1.0, EllipseRefinementMethod.BoundaryConsistency(a, a, 40, 60));
        Assert.Equal(0.0, EllipseRefinementMethod.BoundaryConsistency(a, far, 40, 60));
        var shifted = new Ellipse(21, 20, 10, 7, 0.2).Rasterize(40, 60);
        double s = EllipseRefinementMethod.BoundaryConsistency(a, shifted, 40, 60);
        Assert.InRange(s, 0.5, 0.99);
    }

    [Fact]
    public void ContourRegularityPrefersEllipsesToIrregularShapes()
    {
        var e = new Ellipse(30, 20, 14, 9, 0.4).Rasterize(40, 60);
        Assert.True(EllipseRefinementMethod.ContourRegularity(e, 40, 60, out var fit) > 0.97);
        Assert.NotNull(fit);
        var cross = new byte[40 * 60];
        for (int y = 5; y < 35; y++) for (int x = 27; x < 33; x++) cross[y * 60 + x] = 1;
        for (int y = 17; y < 23; y++) for (int x = 10; x < 50; x++) cross[y * 60 + x] = 1;
        Assert.True(EllipseRefinementMethod.ContourRegularity(cross, 40, 60, out _) < 0.6);
        Assert.Equal(0.0, EllipseRefinementMethod.ContourRegularity(new byte[40 * 60], 40, 60, out var none));
        Assert.Null(none);
    }

    [Fact]
    public void RefinementStrengthensTheCentreAndSuppressesOutside()
    {
        var e = new Ellipse(10, 10, 5, 5, 0);
        var p = new float[21 * 21];
        p[10 * 21 + 10] = 0.2f;   // centre, r = 0
        p[10 * 21 + 16] = 0.9f;   // r = 1.2
        p[10 * 21 + 13] = 0.9f;   // r = 0.6, inside
        var q = EllipseRefinementMethod.Refine(p, e, 21, 21, 0.5, 0.1);
        Assert.Equal(1f, q[10 * 21 + 10], 6);
        Assert.Equal(0.9 * Math.Exp(-2), q[10 * 21 + 16], 5);
        Assert.Equal(0.9f, q[10 * 21 + 13], 6);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.5707963267948966)]
    public void MirrorThetaReflectsAcrossTheMajorAxis(double angle)
    {
        int h = 5, w = 7;
        var e = new Ellipse(3, 2, 2, 1, angle);
        var img = arange(h * w, dtype: ScalarType.Float32).reshape(1, 1, h, w);
        var theta = tensor(EllipseRefinementMethod.MirrorTheta(e, h, w), new long[] { 1, 2, 3 });
        var grid = nn.functional.affine_grid(theta, new long[] { 1, 1, h, w }, align_corners: true);
        var m = nn.functional.grid_sample(img, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Zeros, align_corners: true);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                // horizontal axis through y = 2: (x, y) ← (x, 4 − y); vertical axis through x = 3: (x, y) ← (6 − x, y)
                int sy = angle == 0 ? 4 - y : y, sx = angle == 0 ? x : 6 - x;
                Assert.Equal(sy * w + sx, m[0, 0, y, x].item<float>(), 4);
            }
    }

    [Fact]
    public void ThresholdsFollowTheRunningMeanOfTheScores()
    {
        using var s = new ScoreMemory();
        Assert.Equal(0.5, s.Threshold(0, 0.5));
        s.Update(0.8, 0.9, 0.99);
        Assert.Equal(0.8, s.Threshold(0, 0.5), 9);
        s.Update(0.0, 0.9, 0.99);
        Assert.Equal(0.99 * 0.8, s.Threshold(0, 0.5), 9);
        Assert.Equal(0.9, s.Threshold(1, 0.5), 9);
        Assert.Equal(0.95, s.Threshold(1, 0.95), 9);
    }

    /// <summary>(1, 2, H, W) teacher probabilities: head 0.9 on the mask, 0.1 elsewhere.</summary>
    static Tensor Probs(byte[] head, int h, int w)
    {
        var pk = tensor(head.Select(v => v != 0 ? 0.9f : 0.1f).ToArray(), new long[] { 1, 1, h, w });
        return cat(new[] { 1 - pk, pk }, 1);
    }

    [Fact]
    public void FilteredOutImagesGetNoPseudoLabelOrMirrorLoss()
    {
        const int H = 48, W = 64;
        var ellipse = new Ellipse(32, 24, 16, 11, 0.3).Rasterize(H, W);
        var cross = new byte[H * W];                                           // irregular: low contour regularity
        for (int y = 4; y < 44; y++) for (int x = 30; x < 34; x++) cross[y * W + x] = 1;
        for (int y = 22; y < 26; y++) for (int x = 6; x < 58; x++) cross[y * W + x] = 1;
        var moved = new Ellipse(14, 24, 9, 7, 0.3).Rasterize(H, W);           // flip-TTA disagrees: low boundary consistency
        var pt = cat(new[] { Probs(ellipse, H, W), Probs(cross, H, W), Probs(ellipse, H, W) }, 0);
        var nudged = new Ellipse(33, 24, 16, 11, 0.3).Rasterize(H, W);        // flip-TTA one pixel off: consistent enough
        var ptMirror = cat(new[] { Probs(nudged, H, W), Probs(cross, H, W), Probs(moved, H, W) }, 0);
        using var m = new EllipseRefinementMethod(new UNetConfig { NumClasses = 2 }, new MethodSettings());
        var batch = m.FilterAndRefine(pt, ptMirror);
        Assert.Equal(new[] { 0 }, batch.Kept.Select(k => k.Index));
        Assert.InRange(EllipseRefinementMethod.BoundaryConsistency(ellipse, nudged, H, W), 0.5, 0.99);
        // the kept image's refined target is the head inside its ellipse
        Assert.Equal(1L, batch.Target[0, 24, 32].item<long>());
        Assert.Equal(0L, batch.Target[0, 2, 2].item<long>());

        torch.manual_seed(2);
        var su = randn(3, 2, H, W).requires_grad_(true);
        var (loss, terms) = m.UnlabeledLoss(su, pt, batch);
        Assert.True(terms.ContainsKey("pl") && terms.ContainsKey("mirror"));
        (terms["pl"] + terms["mirror"]).backward();
        var g = su.grad!;
        Assert.True(g[0].abs().sum().item<float>() > 0);
        Assert.Equal(0f, g[1].abs().sum().item<float>());                     // filtered out: no L_pl, no L_mirror
        Assert.Equal(0f, g[2].abs().sum().item<float>());
        // L_pert still covers every unlabeled image
        var su2 = su.detach().clone().requires_grad_(true);
        m.UnlabeledLoss(su2, pt, batch).terms["pert"].backward();
        Assert.All(Enumerable.Range(0, 3), i => Assert.True(su2.grad![i].abs().sum().item<float>() > 0));

        // raised thresholds (running means at 1) filter the nudged ellipse too: nothing kept, no pseudo-label terms
        m.Scores.Update(1.0, 1.0, 0.99);
        var none = m.FilterAndRefine(pt, ptMirror);
        Assert.Empty(none.Kept);
        var (lossNone, termsNone) = m.UnlabeledLoss(su.detach(), pt, none);
        Assert.False(termsNone.ContainsKey("pl"));
        Assert.Equal(termsNone["pert"].item<float>(), lossNone.item<float>());
    }

    /// <summary>4 ultrasound phantom images (32x48), the first 2 with their masks.</summary>
    static (Tensor x, Tensor y) PhantomBatch()
    {
        var samples = Enumerable.Range(0, 4).Select(i => SemiSeg.Data.UltrasoundPhantom.Generate(i, 32, 48)).ToArray();
        return (tensor(samples.SelectMany(s => s.Image).ToArray(), new long[] { 4, 1, 32, 48 }),
                tensor(samples.Take(2).SelectMany(s => s.Mask.Select(v => (long)v)).ToArray(), new long[] { 2, 32, 48 }));
    }

    [Fact]
    public void FilterMomentumIsItsOwnParameter()
    {
        // the thresholds' running means move with score_momentum, whatever the teacher's ema_decay
        torch.manual_seed(4);
        var (x, y) = PhantomBatch();
        using var m = new EllipseRefinementMethod(new UNetConfig { NumClasses = 2 }, new MethodSettings(new Dictionary<string, string> { ["ema_decay"] = "0.5", ["score_momentum"] = "0.9" }));
        m.Scores.Update(0.3, 0.2, 0.9);                                       // running means (0.3, 0.2)
        var step = m.Step(x, y, 2, new TrainingContext(0, 100, 0.01));
        double b = step.Terms["boundary"].item<float>(), r = step.Terms["regularity"].item<float>();
        Assert.True(Math.Abs(b - 0.3) > 0.05 || Math.Abs(r - 0.2) > 0.05, $"batch scores {b}, {r} must differ from the means to tell momenta apart");
        Assert.Equal(0.9 * 0.3 + 0.1 * b, m.Scores.Threshold(0, 0), 5);      // not 0.5·0.3 + 0.5·b (ema_decay)
        Assert.Equal(0.9 * 0.2 + 0.1 * r, m.Scores.Threshold(1, 0), 5);
        Assert.Throws<ArgumentException>(() => new EllipseRefinementMethod(new UNetConfig { NumClasses = 2 }, new MethodSettings(new Dictionary<string, string> { ["score_momentum"] = "1" })));
    }

    [Fact]
    public void StepTrainsOnUltrasoundPhantomImages()
    {
        torch.manual_seed(4);
        var (x, y) = PhantomBatch();
        using var m = new EllipseRefinementMethod(new UNetConfig { NumClasses = 2 }, new MethodSettings(new Dictionary<string, string> { ["rampup"] = "0" }));
        var step = m.Step(x, y, 2, new TrainingContext(10, 100, 0.01));
        Assert.True(step.Terms["pert"].item<float>() > 0);
        Assert.InRange(step.Terms["kept"].item<float>(), 0f, 1f);
        step.Loss.backward();
        Assert.True(m.Student.parameters().First().grad!.abs().sum().item<float>() > 0);
        Assert.Throws<ArgumentException>(() => new EllipseRefinementMethod(new UNetConfig { NumClasses = 2 }, new MethodSettings(new Dictionary<string, string> { ["ellipse_class"] = "2" })));
    }
}
