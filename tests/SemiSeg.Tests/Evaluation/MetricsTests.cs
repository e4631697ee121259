using SemiSeg.Evaluation;

namespace SemiSeg.Tests.Evaluation;

public class MetricsTests
{
    static byte[] Mask(int d, int h, int w, Func<int, int, int, bool> f)
    {
        var m = new byte[d * h * w];
        for (int z = 0; z < d; z++) for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) m[(z * h + y) * w + x] = (byte)(f(z, y, x) ? 1 : 0);
        return m;
    }

    /// <summary>Two 3x3 squares one column apart (hand-computed): each border has 8 pixels, 4 at distance 0 and 4 at distance 1
    /// from the other border. Dice 12/18, Jaccard 6/12, HD95 = 1, ASD = 0.5 (medpy) and the same symmetric.</summary>
    [Fact]
    public void HandComputedOffsetSquares()
    {
        var p = Mask(1, 5, 6, (z, y, x) => y is >= 1 and <= 3 && x is >= 1 and <= 3);
        var r = Mask(1, 5, 6, (z, y, x) => y is >= 1 and <= 3 && x is >= 2 and <= 4);
        var m = SegmentationMetrics.Evaluate("c", p, r, 1, 5, 6, 2).Classes[0];
        Assert.Equal(2.0 / 3, m.Dice, 10);
        Assert.Equal(0.5, m.Jaccard, 10);
        Assert.Equal(1.0, m.Hd95, 10);
        Assert.Equal(0.5, m.Asd, 10);
        var s = SegmentationMetrics.Evaluate("c", p, r, 1, 5, 6, 2, MetricMode.Spacing).Classes[0];
        Assert.Equal(1.0, s.Hd95, 10);
        Assert.Equal(0.5, s.Asd, 10);
    }

    /// <summary>Single voxels 3 columns apart; with spacing x = 2 mm the spacing mode reports 6 mm, medpy stays in voxels.</summary>
    [Fact]
    public void SpacingModeUsesMillimetres()
    {
        var p = Mask(1, 7, 7, (z, y, x) => y == 2 && x == 2);
        var r = Mask(1, 7, 7, (z, y, x) => y == 2 && x == 5);
        var sp = new[] { 1.0, 1.0, 2.0 };
        var med = SegmentationMetrics.Evaluate("c", p, r, 1, 7, 7, 2, MetricMode.Medpy, spacing: sp).Classes[0];
        var mm = SegmentationMetrics.Evaluate("c", p, r, 1, 7, 7, 2, MetricMode.Spacing, spacing: sp).Classes[0];
        Assert.Equal(0, med.Dice);
        Assert.Equal(3.0, med.Hd95, 10);
        Assert.Equal(3.0, med.Asd, 10);
        Assert.Equal(6.0, mm.Hd95, 10);
        Assert.Equal(6.0, mm.Asd, 10);
    }

    /// <summary>medpy's asd is directed (prediction → reference): a small prediction inside a large reference.</summary>
    [Fact]
    public void MedpyAsdIsDirectedAndHd95PoolsBothDirections()
    {
        // 1-D-like case on a 1x1x11 row: reference = x in [0,10], prediction = x = 5. Every voxel of a 1-pixel-high row is surface.
        var p = Mask(1, 1, 11, (z, y, x) => x == 5);
        var r = Mask(1, 1, 11, (z, y, x) => true);
        var m = SegmentationMetrics.Evaluate("c", p, r, 1, 1, 11, 2).Classes[0];
        Assert.Equal(0.0, m.Asd, 10); // the prediction voxel lies on the reference surface
        // pooled distances: [0] (pred->ref) + |x-5| for x = 0..10 (ref->pred) = {0,0,1,1,2,2,3,3,4,4,5,5}; np.percentile(.., 95) = 5
        Assert.Equal(5.0, m.Hd95, 10);
        var s = SegmentationMetrics.Evaluate("c", p, r, 1, 1, 11, 2, MetricMode.Spacing).Classes[0];
        Assert.Equal(30.0 / 12, s.Asd, 10); // symmetric: mean of all 12 distances
        Assert.Equal(5.0, s.Hd95, 10);      // max(95th of [0], 95th of ref->pred = 5)
    }

    [Fact]
    public void ExactDistanceTransformMatchesBruteForce()
    {
        var rng = new Random(3);
        int d = 4, h = 9, w = 11;
        var f = new bool[d * h * w];
        for (int i = 0; i < f.Length; i++) f[i] = rng.NextDouble() < 0.05;
        var sp = new[] { 3.0, 0.7, 1.3 };
        var dt = SemiSeg.Evaluation.SurfaceDistance.SquaredDistanceTo(f, d, h, w, sp);
        for (int z = 0; z < d; z++) for (int y = 0; y < h; y++) for (int x = 0; x < w; x++)
        {
            double best = double.PositiveInfinity;
            for (int z2 = 0; z2 < d; z2++) for (int y2 = 0; y2 < h; y2++) for (int x2 = 0; x2 < w; x2++)
                if (f[(z2 * h + y2) * w + x2])
                    best = Math.Min(best, Math.Pow((z - z2) * sp[0], 2) + Math.Pow((y - y2) * sp[1], 2) + Math.Pow((x - x2) * sp[2], 2));
            Assert.Equal(best, dt[(z * h + y) * w + x], 9);
        }
    }

    [Fact]
    public void VolumesErodeAcrossSlicesLikeScipy()
    {
        // A 3x3x3 cube in a 5x5x5 volume: only its centre voxel is interior with 6-connectivity.
        var cube = Mask(5, 5, 5, (z, y, x) => z is >= 1 and <= 3 && y is >= 1 and <= 3 && x is >= 1 and <= 3);
        var s = SemiSeg.Evaluation.SurfaceDistance.Surface(cube.Select(v => v == 1).ToArray(), 5, 5, 5);
        Assert.Equal(26, s.Count(b => b));
        // A square in the only slice of a 1-slice volume is 2D: its centre is interior.
        var sq = Mask(1, 5, 5, (z, y, x) => y is >= 1 and <= 3 && x is >= 1 and <= 3);
        Assert.Equal(8, SemiSeg.Evaluation.SurfaceDistance.Surface(sq.Select(v => v == 1).ToArray(), 1, 5, 5).Count(b => b));
        // The same square in the middle slice of 3 touches empty slices above and below: all 9 voxels are surface.
        var mid = Mask(3, 5, 5, (z, y, x) => z == 1 && y is >= 1 and <= 3 && x is >= 1 and <= 3);
        Assert.Equal(9, SemiSeg.Evaluation.SurfaceDistance.Surface(mid.Select(v => v == 1).ToArray(), 3, 5, 5).Count(b => b));
    }

    [Fact]
    public void EmptyMaskPolicyIsExplicit()
    {
        var empty = new byte[25];
        var some = Mask(1, 5, 5, (z, y, x) => x == 2 && y == 2);
        var ex = SegmentationMetrics.Evaluate("c", empty, some, 1, 5, 5, 2, policy: EmptyPolicy.Exclude).Classes[0];
        Assert.Equal(EmptyStatus.PredictionEmpty, ex.Empty);
        Assert.Equal(0, ex.Dice);
        Assert.True(double.IsNaN(ex.Hd95) && double.IsNaN(ex.Asd));
        var zero = SegmentationMetrics.Evaluate("c", empty, some, 1, 5, 5, 2, policy: EmptyPolicy.Zero).Classes[0];
        Assert.Equal(0, zero.Hd95);
        var worst = SegmentationMetrics.Evaluate("c", empty, some, 1, 5, 5, 2, policy: EmptyPolicy.Worst).Classes[0];
        Assert.Equal(Math.Sqrt(32), worst.Hd95, 10);
        var both = SegmentationMetrics.Evaluate("c", empty, empty, 1, 5, 5, 2, policy: EmptyPolicy.Exclude).Classes[0];
        Assert.Equal(EmptyStatus.BothEmpty, both.Empty);
        Assert.True(double.IsNaN(both.Dice));
        Assert.Equal(1, SegmentationMetrics.Evaluate("c", empty, empty, 1, 5, 5, 2, policy: EmptyPolicy.Worst).Classes[0].Dice);

        var report = new EvaluationReport(new[] { "bg", "fg" }, MetricMode.Medpy, EmptyPolicy.Exclude, new[]
        {
            SegmentationMetrics.Evaluate("a", empty, some, 1, 5, 5, 2),
            SegmentationMetrics.Evaluate("b", some, some, 1, 5, 5, 2),
        });
        var sum = report.Summary()[0];
        Assert.Equal(0.5, sum.Dice, 10);
        Assert.Equal(0.0, sum.Hd95, 10); // only the defined case counts
        Assert.Equal(1, sum.UndefinedDistance);
        Assert.Contains("\"empty_policy\": \"exclude\"", report.ToJson());
        Assert.Contains("a,fg,0,0,NaN,NaN,PredictionEmpty", report.ToCsv());
    }

    [Fact]
    public void PercentileMatchesNumpyLinear()
    {
        Assert.Equal(3.85, SemiSeg.Evaluation.SurfaceDistance.Percentile(new double[] { 4, 1, 3, 2 }, 95), 10);
        Assert.Equal(7.0, SemiSeg.Evaluation.SurfaceDistance.Percentile(new double[] { 7 }, 95), 10);
    }
}
