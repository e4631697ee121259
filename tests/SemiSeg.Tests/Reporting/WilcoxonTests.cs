using SemiSeg.Reporting;

namespace SemiSeg.Tests.Reporting;

public class WilcoxonTests
{
    [Fact]
    public void ExactAndApproximatePValuesMatchScipy()
    {
        // scipy 1.10.1, stats.wilcoxon(x): no zeros, no ties, n = 10 -> exact distribution
        var exact = WilcoxonSignedRank.Test(new[] { 0.5, -1.25, 2.0, 3.5, -0.75, 1.0, 4.25, -2.5, 0.25, 1.75 });
        Assert.True(exact.Exact);
        Assert.Equal(16.0, exact.Statistic);
        Assert.Equal(0.275390625, exact.P, 12);
        // a zero (dropped) and tied magnitudes -> normal approximation with the tie correction
        var approx = WilcoxonSignedRank.Test(new[] { 1, -2, 2, 3, -3, 3, 4, 0, 5, -1, 6, 2.5 });
        Assert.False(approx.Exact);
        Assert.Equal(11, approx.N);
        Assert.Equal(12.0, approx.Statistic);
        Assert.Equal(0.06111155867536276, approx.P, 6);
        Assert.Equal(1.0, WilcoxonSignedRank.Test(new[] { 0.0, 0.0 }).P);
    }

    [Fact]
    public void ExactPValueEqualsEnumerationOfAllSignAssignments()
    {
        var rng = new Random(7);
        var d = Enumerable.Range(1, 12).Select(i => (rng.NextDouble() < 0.3 ? -1 : 1) * (i + rng.NextDouble() * 0.5)).ToArray();
        var r = WilcoxonSignedRank.Test(d);
        Assert.True(r.Exact);
        // magnitudes are increasing, so rank i+1 belongs to d[i]; count the sign patterns at least as extreme
        double observed = d.Select((x, i) => x > 0 ? i + 1.0 : 0).Sum(), mean = 12 * 13 / 4.0;
        int extreme = 0;
        for (int mask = 0; mask < 1 << 12; mask++)
        {
            double w = 0;
            for (int i = 0; i < 12; i++) if ((mask >> i & 1) == 1) w += i + 1;
            if (Math.Abs(w - mean) >= Math.Abs(observed - mean)) extreme++;
        }
        Assert.Equal(extreme / 4096.0, r.P, 12);
        Assert.InRange(r.P, 0.0, 0.2); // mostly positive differences: a real effect
    }

    [Fact]
    public void ErfcIsAccurate()
    {
        Assert.Equal(1.0, WilcoxonSignedRank.Erfc(0), 7);
        Assert.Equal(0.157299207050285, WilcoxonSignedRank.Erfc(1), 7);
        Assert.Equal(1.842700792949715, WilcoxonSignedRank.Erfc(-1), 7);
        Assert.Equal(4.677734981047266e-3, WilcoxonSignedRank.Erfc(2), 8);
    }
}
