using System.Globalization;
using System.Text;
using System.Text.Json;
using SemiSeg.Data;

namespace SemiSeg.Evaluation;

public sealed record ClassSummary(string Class, double Dice, double DiceStd, double Jaccard, double Hd95, double Hd95Std, double Asd,
    int Cases, int UndefinedDice, int UndefinedDistance);

/// <summary>Per-case and per-class results of an evaluation, with the metric mode and empty-mask policy that produced
/// them; written as CSV (one row per case and class) and JSON (summary + cases).</summary>
public sealed class EvaluationReport
{
    public EvaluationReport(IReadOnlyList<string> classNames, MetricMode mode, EmptyPolicy policy, IReadOnlyList<CaseMetrics> cases)
    {
        ClassNames = classNames; Mode = mode; Policy = policy; Cases = cases;
    }

    public IReadOnlyList<string> ClassNames { get; }
    public MetricMode Mode { get; }
    public EmptyPolicy Policy { get; }
    public IReadOnlyList<CaseMetrics> Cases { get; }
    public string Units => Mode == MetricMode.Medpy ? "voxels" : "mm";
    /// <summary>Where the spacing behind mm distances came from (the dataset's own statement), for the JSON; null = the files.</summary>
    public string? SpacingSource { get; set; }
    /// <summary>Clinical measurements beside the overlap metrics (head circumference, angle of progression), written
    /// into metrics.json under "measurements" by name.</summary>
    public Dictionary<string, object> Measurements { get; } = new(StringComparer.Ordinal);
    /// <summary>Cases that could not be scored (a missing or unreadable mask, another voxel grid), with the reason;
    /// the means are over the scored cases only.</summary>
    public IReadOnlyList<EvaluationFailure> Failures { get; init; } = Array.Empty<EvaluationFailure>();
    /// <summary>Things the user should know about the numbers (--spacing overriding a file's spacing).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();

    static (double mean, double std, int n) Stats(IEnumerable<double> values)
    {
        var v = values.Where(x => !double.IsNaN(x)).ToArray();
        if (v.Length == 0) return (double.NaN, double.NaN, 0);
        double m = v.Average();
        return (m, Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / v.Length), v.Length);
    }

    public IReadOnlyList<ClassSummary> Summary()
    {
        var list = new List<ClassSummary>();
        int nc = Cases.Count == 0 ? 0 : Cases[0].Classes.Count;
        for (int c = 0; c < nc; c++)
        {
            var rows = Cases.Select(k => k.Classes[c]).ToList();
            var dice = Stats(rows.Select(r => r.Dice));
            var jac = Stats(rows.Select(r => r.Jaccard));
            var hd = Stats(rows.Select(r => r.Hd95));
            var asd = Stats(rows.Select(r => r.Asd));
            list.Add(new ClassSummary(c + 1 < ClassNames.Count ? ClassNames[c + 1] : $"class{c + 1}", dice.mean, dice.std, jac.mean, hd.mean, hd.std, asd.mean,
                rows.Count, rows.Count(r => double.IsNaN(r.Dice)), rows.Count(r => double.IsNaN(r.Hd95))));
        }
        return list;
    }

    /// <summary>Mean over classes of the per-class means (the field's headline numbers).</summary>
    public ClassSummary Mean()
    {
        var s = Summary();
        double M(Func<ClassSummary, double> f) { var v = s.Select(f).Where(x => !double.IsNaN(x)).ToArray(); return v.Length == 0 ? double.NaN : v.Average(); }
        return new ClassSummary("mean", M(x => x.Dice), M(x => x.DiceStd), M(x => x.Jaccard), M(x => x.Hd95), M(x => x.Hd95Std), M(x => x.Asd),
            Cases.Count, s.Sum(x => x.UndefinedDice), s.Sum(x => x.UndefinedDistance));
    }

    static string F(double v) => double.IsNaN(v) ? "NaN" : v.ToString("0.######", CultureInfo.InvariantCulture);

    public string ToCsv()
    {
        var sb = new StringBuilder("case,class,dice,jaccard,hd95,asd,empty\n");
        foreach (var k in Cases)
            for (int c = 0; c < k.Classes.Count; c++)
            {
                var m = k.Classes[c];
                sb.Append(k.Case).Append(',').Append(c + 1 < ClassNames.Count ? ClassNames[c + 1] : $"class{c + 1}").Append(',')
                  .Append(F(m.Dice)).Append(',').Append(F(m.Jaccard)).Append(',').Append(F(m.Hd95)).Append(',').Append(F(m.Asd)).Append(',')
                  .Append(m.Empty).Append('\n');
            }
        return sb.ToString();
    }

    public string ToJson()
    {
        object? N(double v) => double.IsNaN(v) ? null : Math.Round(v, 6);
        var doc = new
        {
            mode = Mode.ToString().ToLowerInvariant(),
            distance_units = Units,
            empty_policy = Policy.ToString().ToLowerInvariant(),
            hd95_definition = Mode == MetricMode.Medpy ? "95th percentile of both directed surface distance sets concatenated (medpy hd95)" : "max of the two directed 95th percentiles",
            asd_definition = Mode == MetricMode.Medpy ? "mean directed distance prediction->reference (medpy asd)" : "symmetric mean surface distance (ASSD)",
            cases = Cases.Count,
            mean = SummaryJson(Mean(), N),
            classes = Summary().Select(s => SummaryJson(s, N)).ToArray(),
            per_case = Cases.Select(k =>
            {
                var o = JsonSerializer.SerializeToNode(new
                {
                    @case = k.Case,
                    classes = k.Classes.Select((m, c) => new { @class = c + 1 < ClassNames.Count ? ClassNames[c + 1] : $"class{c + 1}", dice = N(m.Dice), jaccard = N(m.Jaccard), hd95 = N(m.Hd95), asd = N(m.Asd), empty = m.Empty.ToString() }).ToArray(),
                })!.AsObject();
                if (k.Spacing is not null) { o["spacing_mm_zyx"] = JsonSerializer.SerializeToNode(k.Spacing); o["spacing_source"] = k.SpacingSource; }
                if (k.Prediction is not null) o["prediction"] = k.Prediction;
                if (k.Geometry is not null) o["geometry"] = k.Geometry;
                return o;
            }).ToArray(),
        };
        var json = JsonSerializer.SerializeToNode(doc)!.AsObject();
        if (Mode == MetricMode.Medpy) json.Insert(json.IndexOf("distance_units") + 1, "spacing", "not used: medpy mode measures distances in voxels");
        else if (SpacingSource is not null) json.Insert(json.IndexOf("distance_units") + 1, "spacing", SpacingSource);
        else
        {
            var sources = Cases.Select(k => k.SpacingSource).Where(x => x is not null).Distinct().ToList();
            if (sources.Count > 0) json.Insert(json.IndexOf("distance_units") + 1, "spacing", "per case (spacing_mm_zyx): " + string.Join("; ", sources));
        }
        if (Failures.Count > 0)
            json.Insert(json.IndexOf("cases") + 1, "failed", JsonSerializer.SerializeToNode(Failures.Select(f => new { @case = f.Case, file = f.File, reason = f.Reason }).ToArray()));
        if (Warnings.Count > 0) json["warnings"] = JsonSerializer.SerializeToNode(Warnings);
        if (Measurements.Count > 0) json["measurements"] = JsonSerializer.SerializeToNode(Measurements);
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    static object SummaryJson(ClassSummary s, Func<double, object?> n) => new
    {
        @class = s.Class, dice = n(s.Dice), dice_std = n(s.DiceStd), jaccard = n(s.Jaccard), hd95 = n(s.Hd95), hd95_std = n(s.Hd95Std), asd = n(s.Asd),
        cases = s.Cases, undefined_dice = s.UndefinedDice, undefined_distance = s.UndefinedDistance,
    };

    public void Write(string directory, string prefix = "metrics")
    {
        Directory.CreateDirectory(directory);
        AtomicFile.WriteAllText(Path.Combine(directory, prefix + ".csv"), ToCsv());
        AtomicFile.WriteAllText(Path.Combine(directory, prefix + ".json"), ToJson());
    }

    /// <summary>A plain-text table (per class and mean), for logs.</summary>
    public string ToTable()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{"class",-12} {"Dice%",8} {"Jaccard%",9} {"HD95",8} {"ASD",8}  (distances in {Units}; empty policy: {Policy.ToString().ToLowerInvariant()})");
        foreach (var s in Summary().Append(Mean()))
            sb.AppendLine($"{s.Class,-12} {P(s.Dice),8} {P(s.Jaccard),9} {D(s.Hd95),8} {D(s.Asd),8}" + (s.UndefinedDistance > 0 || s.UndefinedDice > 0 ? $"  ({s.UndefinedDistance} undefined HD95/ASD, {s.UndefinedDice} undefined Dice)" : ""));
        return sb.ToString();
        static string P(double v) => double.IsNaN(v) ? "NaN" : (100 * v).ToString("0.00", CultureInfo.InvariantCulture);
        static string D(double v) => double.IsNaN(v) ? "NaN" : v.ToString("0.00", CultureInfo.InvariantCulture);
    }
}
