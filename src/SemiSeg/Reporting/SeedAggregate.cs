using System.Globalization;
using System.Text.RegularExpressions;

namespace SemiSeg.Reporting;

/// <summary>Runs that differ only in their seed (names ending in -sSEED, as `semiseg grid` names them), summarised:
/// mean ± sample sd over seeds of the test metrics, and against the baseline method's runs on the same data the mean
/// paired per-case Dice difference and the Wilcoxon signed-rank test over all (case, seed) pairs, each run paired
/// with the baseline run of the same seed.</summary>
public sealed record SeedGroup(string Name, string Method, string Data, IReadOnlyList<RunRecord> Runs, SeedGroup? Baseline,
    double DeltaDice, WilcoxonSignedRank.Result? Test, int Pairs)
{
    public bool IsBaseline { get; init; }
    public IReadOnlyList<int> Seeds => Runs.Select(r => SeedAggregate.SeedOf(r.Name) ?? 0).ToList();
}

public static class SeedAggregate
{
    static readonly Regex SeedSuffix = new(@"^(?<group>.+)-s(?<seed>\d+)$", RegexOptions.Compiled);

    public static int? SeedOf(string runName) =>
        SeedSuffix.Match(runName) is { Success: true } m && int.TryParse(m.Groups["seed"].Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) ? s : null;

    /// <summary>Groups of evaluated seed runs (runs without a -sSEED name are left to the per-run table); only groups
    /// with at least one run are returned, baseline first per data group.</summary>
    public static List<SeedGroup> Aggregate(IReadOnlyList<RunRecord> runs, string baseline = "supervised")
    {
        var groups = runs.Where(r => r.Evaluated && SeedOf(r.Name) is not null)
            .GroupBy(r => (Group: SeedSuffix.Match(r.Name).Groups["group"].Value, r.Data, r.Method))
            .Select(g => (g.Key, Runs: g.OrderBy(r => SeedOf(r.Name)).ToList()))
            .ToList();
        var result = new List<SeedGroup>();
        foreach (var dataGroup in groups.GroupBy(g => g.Key.Data))
        {
            var baseGroup = dataGroup.Where(g => g.Key.Group == baseline).Concat(dataGroup.Where(g => g.Key.Method == baseline).OrderBy(g => g.Key.Group.Length))
                .Select(g => (SeedGroup?)new SeedGroup(g.Key.Group, g.Key.Method, g.Key.Data, g.Runs, null, double.NaN, null, 0) { IsBaseline = true }).FirstOrDefault();
            foreach (var g in dataGroup.OrderBy(g => baseGroup is not null && g.Key.Group == baseGroup.Name ? 0 : 1).ThenBy(g => g.Key.Group, StringComparer.Ordinal))
            {
                if (baseGroup is not null && g.Key.Group == baseGroup.Name) { result.Add(baseGroup); continue; }
                var diffs = new List<double>();
                if (baseGroup is not null)
                    foreach (var run in g.Runs)
                    {
                        var partner = baseGroup.Runs.FirstOrDefault(b => SeedOf(b.Name) == SeedOf(run.Name));
                        if (partner is null) continue;
                        foreach (var (c, d) in run.CaseDice)
                            if (partner.CaseDice.TryGetValue(c, out var bd) && !double.IsNaN(d) && !double.IsNaN(bd)) diffs.Add(d - bd);
                    }
                result.Add(new SeedGroup(g.Key.Group, g.Key.Method, g.Key.Data, g.Runs, baseGroup,
                    diffs.Count == 0 ? double.NaN : diffs.Average(), diffs.Count == 0 ? null : WilcoxonSignedRank.Test(diffs), diffs.Count));
            }
        }
        return result;
    }

    /// <summary>(mean, sample standard deviation) of the finite values; sd NaN for one value.</summary>
    public static (double Mean, double Sd) MeanSd(IEnumerable<double> values)
    {
        var v = values.Where(double.IsFinite).ToArray();
        if (v.Length == 0) return (double.NaN, double.NaN);
        double mean = v.Average();
        double sd = v.Length < 2 ? double.NaN : Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        return (mean, sd);
    }

    public static List<ReportTable> Tables(IReadOnlyList<SeedGroup> groups)
    {
        static string Pm((double Mean, double Sd) x, double scale) => double.IsNaN(x.Mean) ? "–"
            : (scale * x.Mean).ToString("0.00", CultureInfo.InvariantCulture) + (double.IsNaN(x.Sd) ? "" : " ± " + (scale * x.Sd).ToString("0.00", CultureInfo.InvariantCulture));
        var tables = new List<ReportTable>();
        foreach (var data in groups.GroupBy(g => g.Data))
        {
            var rows = new List<string[]>();
            foreach (var g in data)
            {
                var cells = new List<string> { g.Name, g.Method, string.Join(",", g.Seeds), Pm(MeanSd(g.Runs.Select(r => r.Dice)), 100), Pm(MeanSd(g.Runs.Select(r => r.Jaccard)), 100), Pm(MeanSd(g.Runs.Select(r => r.Hd95)), 1), Pm(MeanSd(g.Runs.Select(r => r.Asd)), 1) };
                if (g.Baseline is null) cells.AddRange(new[] { g.IsBaseline ? "(baseline)" : "–", "", "", "" });
                else cells.AddRange(new[] { g.Baseline.Name, double.IsNaN(g.DeltaDice) ? "–" : (g.DeltaDice >= 0 ? "+" : "") + (100 * g.DeltaDice).ToString("0.00", CultureInfo.InvariantCulture),
                    g.Pairs.ToString(CultureInfo.InvariantCulture), g.Test is null ? "–" : g.Test.P < 1e-4 ? g.Test.P.ToString("0.0e+0", CultureInfo.InvariantCulture) : g.Test.P.ToString("0.0000", CultureInfo.InvariantCulture) });
                rows.Add(cells.ToArray());
            }
            tables.Add(new ReportTable(data.Key, "Over seeds: " + data.Key,
                "Mean ± sample sd over the seeds' runs; Δ = mean per-case Dice difference to the baseline run of the same seed (points), p = two-sided Wilcoxon signed-rank test over all (case, seed) pairs.",
                new[] { "runs", "method", "seeds", "Dice", "Jaccard", "HD95", "ASD", "baseline", "Δ Dice", "pairs", "p" }, rows));
        }
        return tables;
    }

    public static string ToMarkdown(IReadOnlyList<SeedGroup> groups) => string.Concat(Tables(groups).Select(t => t.ToMarkdown()));
}
