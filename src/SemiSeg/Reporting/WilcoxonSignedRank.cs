namespace SemiSeg.Reporting;

/// <summary>
/// The two-sided Wilcoxon signed-rank test of paired differences, with scipy.stats.wilcoxon's defaults: zero
/// differences are dropped (zero_method "wilcox"); with at most 50 differences, none zero and no tied magnitudes, the
/// p-value comes from the exact null distribution of the rank sum, otherwise from the normal approximation with the
/// tie correction of the variance and no continuity correction (scipy's mode "auto"). The field compares methods on the same test cases
/// this way (per-case Dice of two runs).
/// </summary>
public static class WilcoxonSignedRank
{
    public sealed record Result(int N, double RankSumPositive, double RankSumNegative, double P, bool Exact)
    {
        /// <summary>min(W+, W−), the statistic scipy reports for the two-sided test.</summary>
        public double Statistic => Math.Min(RankSumPositive, RankSumNegative);
    }

    public static Result Test(IEnumerable<double> differences)
    {
        var all = differences.Where(x => !double.IsNaN(x)).ToArray();
        var d = all.Where(x => x != 0).ToArray();
        int n = d.Length;
        bool zeros = d.Length < all.Length;
        if (n == 0) return new Result(0, 0, 0, 1.0, true);
        var order = Enumerable.Range(0, n).OrderBy(i => Math.Abs(d[i])).ToArray();
        var ranks = new double[n];
        bool ties = false;
        double tieTerm = 0;                                         // Σ (t³ − t) over groups of tied magnitudes
        for (int i = 0; i < n;)
        {
            int j = i;
            while (j + 1 < n && Math.Abs(d[order[j + 1]]) == Math.Abs(d[order[i]])) j++;
            double rank = (i + j + 2) / 2.0;                        // average of ranks i+1 .. j+1
            for (int k = i; k <= j; k++) ranks[order[k]] = rank;
            int t = j - i + 1;
            if (t > 1) { ties = true; tieTerm += (double)t * t * t - t; }
            i = j + 1;
        }
        double wPlus = 0, wMinus = 0;
        for (int i = 0; i < n; i++) if (d[i] > 0) wPlus += ranks[i]; else wMinus += ranks[i];

        if (n <= 50 && !ties && !zeros)
        {
            // counts[s] = number of sign assignments whose positive ranks sum to s (ranks 1..n)
            int max = n * (n + 1) / 2;
            var counts = new double[max + 1];
            counts[0] = 1;
            for (int r = 1; r <= n; r++)
                for (int s = max; s >= r; s--) counts[s] += counts[s - r];
            double total = Math.Pow(2, n), w = wPlus, below = 0, above = 0;
            for (int s = 0; s <= max; s++)
            {
                if (s <= w) below += counts[s];
                if (s >= w) above += counts[s];
            }
            return new Result(n, wPlus, wMinus, Math.Min(1.0, 2 * Math.Min(below, above) / total), true);
        }
        double mean = n * (n + 1) / 4.0;
        double variance = n * (n + 1) * (2.0 * n + 1) / 24.0 - tieTerm / 48.0;
        if (variance <= 0) return new Result(n, wPlus, wMinus, 1.0, false);
        double z = (wPlus - mean) / Math.Sqrt(variance);
        return new Result(n, wPlus, wMinus, Math.Min(1.0, Erfc(Math.Abs(z) / Math.Sqrt(2))), false);
    }

    /// <summary>The complementary error function (Numerical Recipes' Chebyshev fit, relative error below 1.2e-7).</summary>
    public static double Erfc(double x)
    {
        double z = Math.Abs(x), t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
                   t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2.0 - r;
    }
}
