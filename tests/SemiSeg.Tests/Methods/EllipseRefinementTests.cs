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

    [Fact]
    public void StepTrainsOnUltrasoundPhantomImages()
    {
        torch.manual_seed(4);
        var samples = Enumerable.Range(0, 4).Select(i => SemiSeg.Data.UltrasoundPhantom.Generate(i, 32, 48)).ToArray();
        var x = tensor(samples.SelectMany(s => s.Image).ToArray(), new long[] { 4, 1, 32, 48 });
        var y = tensor(samples.Take(2).SelectMany(s => s.Mask.Select(v => (long)v)).ToArray(), new long[] { 2, 32, 48 });
        using var m = new EllipseRefinementMethod(new UNetConfig { NumClasses = 2 }, new MethodSettings(new Dictionary<string, string> { ["rampup"] = "0" }));
        var step = m.Step(x, y, 2, new TrainingContext(10, 100, 0.01));
        Assert.True(step.Terms["pert"].item<float>() > 0);
        Assert.InRange(step.Terms["kept"].item<float>(), 0f, 1f);
        step.Loss.backward();
        Assert.True(m.Student.parameters().First().grad!.abs().sum().item<float>() > 0);
        Assert.Throws<ArgumentException>(() => new EllipseRefinementMethod(new UNetConfig { NumClasses = 2 }, new MethodSettings(new Dictionary<string, string> { ["ellipse_class"] = "2" })));
    }
}
