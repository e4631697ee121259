using System.Globalization;
using System.Text.RegularExpressions;
using SemiSeg.Training;

namespace SemiSeg.Reporting;

/// <summary>A run's course: the loss terms and learning rate of every logged iteration, and every validation's mean
/// and per-class Dice, read from its iterations.jsonl (<see cref="IterationLog"/>; for runs older than that file, the
/// "it N name value ... lr X" lines of train.log) and validation.csv.</summary>
public sealed class RunHistory
{
    /// <summary>Series by name ("loss", each loss term, "lr"): (iteration, value) in order.</summary>
    public IReadOnlyDictionary<string, List<(long It, double Value)>> Training { get; }
    /// <summary>Validation series by column ("mean_dice", "dice_RV", ...): (iteration, value).</summary>
    public IReadOnlyDictionary<string, List<(long It, double Value)>> Validation { get; }

    RunHistory(Dictionary<string, List<(long, double)>> training, Dictionary<string, List<(long, double)>> validation)
    {
        Training = training; Validation = validation;
    }

    public bool IsEmpty => Training.Count == 0 && Validation.Count == 0;

    static readonly Regex IterationLine = new(@"\] it (?<it>\d+) (?<rest>.*)$", RegexOptions.Compiled);
    static readonly Regex Resumed = new(@"\] resumed from .* at iteration (?<it>\d+)", RegexOptions.Compiled);

    public static RunHistory Load(string runFolder)
    {
        var training = new Dictionary<string, List<(long, double)>>(StringComparer.Ordinal);
        var log = Path.Combine(runFolder, "train.log");
        if (File.Exists(Path.Combine(runFolder, IterationLog.FileName)))
            foreach (var r in IterationLog.Read(runFolder))
                foreach (var (name, v) in new[] { ("loss", r.Loss) }.Concat(r.Terms.Select(t => (t.Key, t.Value))).Append(("lr", r.LearningRate)))
                {
                    if (!training.TryGetValue(name, out var series)) training[name] = series = new();
                    series.Add((r.Iteration, v));
                }
        else if (File.Exists(log))
            foreach (var line in File.ReadLines(log))
            {
                // a resumed run logs the iterations after its checkpoint again: keep the latest values
                if (Resumed.Match(line) is { Success: true } rm)
                {
                    long from = long.Parse(rm.Groups["it"].Value, CultureInfo.InvariantCulture);
                    foreach (var s in training.Values) s.RemoveAll(p => p.Item1 > from);
                    continue;
                }
                var m = IterationLine.Match(line);
                if (!m.Success) continue;
                long it = long.Parse(m.Groups["it"].Value, CultureInfo.InvariantCulture);
                var tokens = m.Groups["rest"].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                for (int i = 0; i + 1 < tokens.Length; i += 2)
                {
                    // pairs "name value" until the rate ("4.25 it/s") and the data-wait column
                    if (double.TryParse(tokens[i], NumberStyles.Float, CultureInfo.InvariantCulture, out _)) break;
                    if (!double.TryParse(tokens[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out var v)) break;
                    if (!training.TryGetValue(tokens[i], out var series)) training[tokens[i]] = series = new();
                    series.Add((it, v));
                }
            }

        var validation = new Dictionary<string, List<(long, double)>>(StringComparer.Ordinal);
        var csv = Path.Combine(runFolder, "validation.csv");
        if (File.Exists(csv))
        {
            var lines = File.ReadAllLines(csv);
            if (lines.Length > 0)
            {
                var header = lines[0].Split(',');
                var rows = new SortedDictionary<long, string[]>();
                foreach (var line in lines.Skip(1))
                {
                    var f = line.Split(',');
                    if (f.Length == header.Length && long.TryParse(f[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var it)) rows[it] = f; // a resumed run's repeat wins
                }
                for (int c = 1; c < header.Length; c++)
                    validation[header[c]] = rows.Select(r => (r.Key, double.TryParse(r.Value[c], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : double.NaN)).ToList();
            }
        }
        return new RunHistory(training, validation);
    }
}
