using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace SemiSeg.Reporting;

/// <summary>One training run as its folder records it: config.json (method), train.log (the data it was trained on,
/// seconds per iteration), validation.csv (best validation Dice) and an evaluation's metrics.json.</summary>
public sealed record RunRecord(string Name, string Folder, string Method, string Data, string? MetricsPath,
    double Dice, double Jaccard, double Hd95, double Asd, IReadOnlyList<(string Class, double Dice)> ClassDice,
    IReadOnlyDictionary<string, double> CaseDice, string? Mode, double BestValDice, long BestValIteration, double SecondsPerIteration)
{
    public bool Evaluated => MetricsPath is not null;
    /// <summary>Mean |predicted − reference| head circumference in mm, where the evaluation measured it (HC18).</summary>
    public double HcErrorMm { get; init; } = double.NaN;
    /// <summary>Mean |ΔAoP| in degrees, where the evaluation measured the angle of progression (PSFH).</summary>
    public double AopErrorDeg { get; init; } = double.NaN;
}

/// <summary>A table of a report: a Markdown section (### title, intro, pipe table) or an HTML table.</summary>
public sealed record ReportTable(string Group, string Title, string Intro, string[] Header, List<string[]> Rows)
{
    public string ToMarkdown()
    {
        static string Cell(string c) => c.Replace("|", "\\|");
        var sb = new StringBuilder();
        sb.AppendLine($"### {Title}");
        sb.AppendLine();
        if (Intro.Length > 0) sb.AppendLine(Intro);
        sb.AppendLine();
        static string Line(IEnumerable<string> cells) => "|" + string.Concat(cells.Select(c => c.Length == 0 ? " |" : $" {Cell(c)} |"));
        sb.AppendLine(Line(Header));
        sb.AppendLine("|" + string.Concat(Header.Select(_ => "---|")));
        foreach (var r in Rows) sb.AppendLine(Line(r));
        sb.AppendLine();
        return sb.ToString();
    }
}

/// <summary>A run beside its baseline: mean paired per-case Dice difference and the Wilcoxon signed-rank test.</summary>
public sealed record ComparedRun(RunRecord Run, RunRecord? Baseline, double DeltaDice, WilcoxonSignedRank.Result? Test, int PairedCases);

/// <summary>
/// The comparison table of a set of runs (`semiseg report`): per run the test Dice/Jaccard/HD95/ASD (mean over
/// classes of the per-class means, as `evaluate` prints), the head circumference error (mm) or |ΔAoP| (degrees) where
/// the evaluation measured them, per-class Dice, best validation Dice, seconds per iteration,
/// and against a baseline trained on the same data (by default the `supervised` run) the mean per-case Dice
/// difference and the two-sided Wilcoxon signed-rank p-value over the cases both evaluated (per-case Dice = mean over
/// the classes defined in that case). Runs are grouped by the data line of their train.log (dataset, labeled split and
/// evaluation sets), so a baseline is only ever paired with runs on the same split.
/// </summary>
public static class RunComparison
{
    static readonly Regex DataLine = new(@"\] method [^;]*; (?<data>.*)$", RegexOptions.Compiled);
    static readonly Regex Finished = new(@"finished \d+ iterations \((?<s>[0-9.]+) s/iteration\)", RegexOptions.Compiled);

    /// <summary>Runs under the given paths: a folder with config.json is a run; otherwise its sub-folders that are runs
    /// (sorted by name). <paramref name="evaluation"/> names the evaluation folder inside a run (eval-test).</summary>
    public static List<RunRecord> Load(IEnumerable<string> paths, string evaluation = "eval-test")
    {
        var runs = new List<RunRecord>();
        foreach (var p in paths)
        {
            if (!Directory.Exists(p)) throw new DirectoryNotFoundException($"'{p}' is not a folder (give run folders or folders of runs)");
            if (File.Exists(Path.Combine(p, "config.json"))) { runs.Add(LoadRun(p, evaluation)); continue; }
            var found = Directory.GetDirectories(p).Where(d => File.Exists(Path.Combine(d, "config.json"))).OrderBy(d => d, StringComparer.Ordinal).ToList();
            if (found.Count == 0) throw new ArgumentException($"'{p}' holds no run (no config.json in it or in its sub-folders)");
            runs.AddRange(found.Select(d => LoadRun(d, evaluation)));
        }
        return runs;
    }

    public static RunRecord LoadRun(string folder, string evaluation = "eval-test")
    {
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
        string configPath = Path.Combine(folder, "config.json");
        string method;
        try
        {
            using var config = JsonDocument.Parse(File.ReadAllText(configPath));
            method = config.RootElement.TryGetProperty("method", out var m) ? m.GetString() ?? "?" : "?";
        }
        catch (JsonException e) { throw new InvalidDataException($"'{configPath}' is not valid JSON: {e.Message}", e); }

        string data = "?"; double secondsPerIteration = double.NaN;
        var log = Path.Combine(folder, "train.log");
        if (File.Exists(log))
            foreach (var line in File.ReadLines(log))
            {
                if (data == "?" && DataLine.Match(line) is { Success: true } dm) data = dm.Groups["data"].Value.Trim();
                if (Finished.Match(line) is { Success: true } fm) secondsPerIteration = double.Parse(fm.Groups["s"].Value, CultureInfo.InvariantCulture);
            }

        double bestVal = double.NaN; long bestIt = 0;
        var val = Path.Combine(folder, "validation.csv");
        if (File.Exists(val))
            foreach (var line in File.ReadLines(val).Skip(1))
            {
                var f = line.Split(',');
                if (f.Length < 2 || !long.TryParse(f[0], out var it) || !double.TryParse(f[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var dice)) continue;
                if (double.IsNaN(bestVal) || dice > bestVal) { bestVal = dice; bestIt = it; }
            }

        var metrics = Path.Combine(folder, evaluation, "metrics.json");
        if (!File.Exists(metrics))
            return new RunRecord(name, folder, method, data, null, double.NaN, double.NaN, double.NaN, double.NaN, Array.Empty<(string, double)>(),
                new Dictionary<string, double>(), null, bestVal, bestIt, secondsPerIteration);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(metrics));
            var root = doc.RootElement;
            var mean = root.GetProperty("mean");
            var classes = root.GetProperty("classes").EnumerateArray().Select(c => (c.GetProperty("class").GetString()!, Num(c, "dice"))).ToList();
            var perCase = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var c in root.GetProperty("per_case").EnumerateArray())
            {
                var dices = c.GetProperty("classes").EnumerateArray().Select(k => Num(k, "dice")).Where(x => !double.IsNaN(x)).ToArray();
                perCase[c.GetProperty("case").GetString()!] = dices.Length == 0 ? double.NaN : dices.Average();
            }
            double Measurement(string key) => root.TryGetProperty("measurements", out var ms) && ms.TryGetProperty(key, out var m)
                ? Num(m, "mean_abs_difference") : double.NaN;
            return new RunRecord(name, folder, method, data, metrics, Num(mean, "dice"), Num(mean, "jaccard"), Num(mean, "hd95"), Num(mean, "asd"),
                classes, perCase, root.TryGetProperty("mode", out var mode) ? mode.GetString() : null, bestVal, bestIt, secondsPerIteration)
            {
                HcErrorMm = Measurement("head_circumference"),
                AopErrorDeg = Measurement("angle_of_progression"),
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"'{metrics}' is not a SemiSeg metrics.json: {e.Message}", e);
        }
    }

    static double Num(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;

    /// <summary>
    /// Pairs every run with its baseline: <paramref name="baseline"/> is a run name (used for the runs on the same data)
    /// or a method name (per data group, the evaluated run of that method with the shortest name, i.e. without a
    /// variant tag).
    /// </summary>
    public static List<ComparedRun> Compare(IReadOnlyList<RunRecord> runs, string baseline = "supervised")
    {
        RunRecord? BaselineFor(RunRecord r)
        {
            var named = runs.FirstOrDefault(b => b.Name == baseline && b.Data == r.Data && b.Evaluated);
            if (named is not null) return named;
            return runs.Where(b => b.Method == baseline && b.Data == r.Data && b.Evaluated).OrderBy(b => b.Name.Length).ThenBy(b => b.Name, StringComparer.Ordinal).FirstOrDefault();
        }
        var list = new List<ComparedRun>();
        foreach (var r in runs)
        {
            var b = BaselineFor(r);
            if (ReferenceEquals(b, r)) b = null;                   // the baseline itself
            if (b is null || !r.Evaluated) { list.Add(new ComparedRun(r, b, double.NaN, null, 0)); continue; }
            var diffs = r.CaseDice.Select(kv => b.CaseDice.TryGetValue(kv.Key, out var bd) ? kv.Value - bd : double.NaN)
                .Where(d => !double.IsNaN(d)).ToList();
            list.Add(diffs.Count == 0 ? new ComparedRun(r, b, double.NaN, null, 0)
                : new ComparedRun(r, b, diffs.Average(), WilcoxonSignedRank.Test(diffs), diffs.Count));
        }
        return list;
    }

    static string P(double v) => double.IsNaN(v) ? "–" : (100 * v).ToString("0.00", CultureInfo.InvariantCulture);
    static string D(double v) => double.IsNaN(v) ? "–" : v.ToString("0.00", CultureInfo.InvariantCulture);
    static string PValue(double p) => p < 1e-4 ? p.ToString("0.0e+0", CultureInfo.InvariantCulture) : p.ToString("0.0000", CultureInfo.InvariantCulture);

    /// <summary>The comparison as tables, one per data group (baseline first, then by name): what the Markdown and
    /// the HTML report render.</summary>
    public static List<ReportTable> Tables(IReadOnlyList<ComparedRun> rows)
    {
        var tables = new List<ReportTable>();
        foreach (var group in rows.GroupBy(r => r.Run.Data))
        {
            var classNames = group.SelectMany(r => r.Run.ClassDice.Select(c => c.Class)).Distinct().ToList();
            var evaluated = group.FirstOrDefault(r => r.Run.Evaluated)?.Run;
            string intro = evaluated is null ? "" :
                $"{evaluated.CaseDice.Count} cases ({Path.GetFileName(Path.GetDirectoryName(evaluated.MetricsPath))}, {evaluated.Mode ?? "?"} metrics); Dice/Jaccard in %, mean over classes; Δ = mean per-case Dice difference to the baseline (points), p = two-sided Wilcoxon signed-rank test on the same cases.";
            bool hc = group.Any(r => !double.IsNaN(r.Run.HcErrorMm)), aop = group.Any(r => !double.IsNaN(r.Run.AopErrorDeg));
            var header = new List<string> { "run", "method", "Dice", "Jaccard", "HD95", "ASD" };
            if (hc) header.Add("HC error (mm)");
            if (aop) header.Add("|ΔAoP| (°)");
            header.AddRange(classNames);
            header.AddRange(new[] { "best val Dice (it)", "s/it", "baseline", "Δ Dice", "p" });
            var baselines = group.Select(r => r.Baseline).Where(b => b is not null).Select(b => b!.Name).ToHashSet();
            var body = new List<string[]>();
            foreach (var r in group.OrderBy(r => baselines.Contains(r.Run.Name) ? 0 : 1).ThenBy(r => r.Run.Name, StringComparer.Ordinal))
            {
                var x = r.Run;
                var cells = new List<string> { x.Name, x.Method, P(x.Dice), P(x.Jaccard), D(x.Hd95), D(x.Asd) };
                if (hc) cells.Add(D(x.HcErrorMm));
                if (aop) cells.Add(D(x.AopErrorDeg));
                var classDice = x.ClassDice.ToDictionary(k => k.Class, k => k.Dice);
                foreach (var c in classNames) cells.Add(P(classDice.GetValueOrDefault(c, double.NaN)));
                cells.Add(double.IsNaN(x.BestValDice) ? "–" : $"{P(x.BestValDice)} ({x.BestValIteration})");
                cells.Add(double.IsNaN(x.SecondsPerIteration) ? "–" : x.SecondsPerIteration.ToString("0.###", CultureInfo.InvariantCulture));
                if (!x.Evaluated) cells.AddRange(new[] { "not evaluated", "", "" });
                else if (r.Baseline is null) cells.AddRange(new[] { baselines.Contains(x.Name) ? "(baseline)" : "–", "", "" });
                else cells.AddRange(new[] { r.Baseline.Name, (r.DeltaDice >= 0 ? "+" : "") + P(r.DeltaDice), r.Test is null ? "–" : PValue(r.Test.P) });
                body.Add(cells.ToArray());
            }
            tables.Add(new ReportTable(group.Key, group.Key, intro, header.ToArray(), body));
        }
        return tables;
    }

    /// <summary>A Markdown section per data group: the table of its runs (baseline first, then by name).</summary>
    public static string ToMarkdown(IReadOnlyList<ComparedRun> rows) => string.Concat(Tables(rows).Select(t => t.ToMarkdown()));

    /// <summary>One CSV row per run (all groups), with the per-class Dice as "class=value" pairs.</summary>
    public static string ToCsv(IReadOnlyList<ComparedRun> rows)
    {
        static string F(double v) => double.IsNaN(v) ? "" : v.ToString("0.######", CultureInfo.InvariantCulture);
        static string Q(string s) => s.Contains(',') || s.Contains('"') ? $"\"{s.Replace("\"", "\"\"")}\"" : s;
        var sb = new StringBuilder("run,method,data,dice,jaccard,hd95,asd,hc_abs_difference_mm,aop_abs_difference_deg,class_dice,best_val_dice,best_val_iteration,seconds_per_iteration,baseline,delta_dice,paired_cases,wilcoxon_p,folder\n");
        foreach (var r in rows)
        {
            var x = r.Run;
            sb.Append(string.Join(',', Q(x.Name), Q(x.Method), Q(x.Data), F(x.Dice), F(x.Jaccard), F(x.Hd95), F(x.Asd), F(x.HcErrorMm), F(x.AopErrorDeg),
                Q(string.Join(' ', x.ClassDice.Select(c => $"{c.Class}={F(c.Dice)}"))), F(x.BestValDice), x.BestValIteration.ToString(CultureInfo.InvariantCulture),
                F(x.SecondsPerIteration), Q(r.Baseline?.Name ?? ""), F(r.DeltaDice), r.PairedCases.ToString(CultureInfo.InvariantCulture),
                r.Test is null ? "" : r.Test.P.ToString("G6", CultureInfo.InvariantCulture), Q(Path.GetFullPath(x.Folder)))).Append('\n');
        }
        return sb.ToString();
    }
}
