using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace SemiSeg.Grid;

/// <summary>One run of a grid: a method at one labeled budget and one seed, with the exact `semiseg train` and
/// `semiseg evaluate` arguments that make it. <see cref="Name"/> is stable: the same grid file always gives the same
/// names (and therefore the same folders), so a grid can be re-run, resumed and extended.</summary>
public sealed record GridRun(int Index, string Name, string Method, int? Labeled, int Seed, string Folder,
    IReadOnlyList<string> TrainArgs, IReadOnlyList<string>? EvaluateArgs, string? MetricsPath);

/// <summary>
/// A grid of training runs, the unit in which this field reports results (method x labeled budget x seed), read from
/// a YAML file:
/// <code>
/// data: ../shared/data/acdc          # --data (relative paths are relative to the grid file)
/// output: runs/grid-acdc             # the folder that holds one folder per run (default: the grid file's name)
/// methods: [supervised, mean-teacher]
/// labeled: [3, 7]                    # --labeled; leave out to use the data's default
/// seeds: [1337, 1338]
/// train:                             # any `semiseg train` option, without "--" (true = a flag, a list = repeated)
///   iterations: 1000
///   patch-size: 96
/// params:                            # --param key=value per method; "*" applies to every method
///   mean-teacher: {rampup: 6.6667}
/// evaluate: {split: test}            # `semiseg evaluate` of best.ckpt after training (the default); false: none
/// </code>
/// Run names are METHOD-LABELED-sSEED (METHOD-sSEED without a budget), with an optional <c>tag</c> after the method.
/// Unknown keys are refused by name, as are train options the grid sets itself.
/// </summary>
public sealed class GridSpec
{
    static readonly HashSet<string> TopKeys = new(StringComparer.Ordinal) { "data", "output", "methods", "labeled", "seeds", "train", "params", "evaluate", "tag" };
    static readonly HashSet<string> GridOwned = new(StringComparer.Ordinal) { "data", "d", "labeled", "method", "m", "seed", "output", "o", "resume", "param", "p" };
    static readonly HashSet<string> EvaluateOwned = new(StringComparer.Ordinal) { "data", "d", "labeled", "checkpoint", "c", "predictions", "output", "o" };
    static readonly HashSet<string> PathOptions = new(StringComparer.Ordinal) { "config", "init-encoder" };
    static readonly Regex SafeName = new("^[A-Za-z0-9][A-Za-z0-9._+-]*$", RegexOptions.Compiled);

    public string File { get; }
    public string Data { get; }
    public string Output { get; }
    public IReadOnlyList<string> Methods { get; }
    public IReadOnlyList<int?> Labeled { get; }
    public IReadOnlyList<int> Seeds { get; }
    public string Tag { get; }
    /// <summary>Shared train options in file order: name (no dashes) and the values (one per repetition; empty for a flag).</summary>
    public IReadOnlyList<(string Name, IReadOnlyList<string> Values)> Train { get; }
    public IReadOnlyDictionary<string, IReadOnlyList<(string Key, string Value)>> Params { get; }
    /// <summary>Evaluate options, or null when the grid does not evaluate.</summary>
    public IReadOnlyList<(string Name, IReadOnlyList<string> Values)>? Evaluate { get; }

    GridSpec(string file, string data, string output, List<string> methods, List<int?> labeled, List<int> seeds, string tag,
        List<(string, IReadOnlyList<string>)> train, Dictionary<string, IReadOnlyList<(string, string)>> prms, List<(string, IReadOnlyList<string>)>? evaluate)
    {
        File = file; Data = data; Output = output; Methods = methods; Labeled = labeled; Seeds = seeds; Tag = tag;
        Train = train; Params = prms; Evaluate = evaluate;
    }

    /// <summary>Reads and checks a grid file; every problem is one error naming the file and the key.</summary>
    public static GridSpec Load(string path, string? outputOverride = null)
    {
        if (!System.IO.File.Exists(path)) throw new FileNotFoundException($"grid file '{path}' not found", path);
        string full = Path.GetFullPath(path), dir = Path.GetDirectoryName(full)!;
        YamlMappingNode root;
        try
        {
            var stream = new YamlStream();
            using (var reader = new StreamReader(full)) stream.Load(reader);
            root = stream.Documents.Count == 1 && stream.Documents[0].RootNode is YamlMappingNode m
                ? m : throw new InvalidDataException($"grid file '{path}': expected one YAML mapping (data:, methods:, seeds:, ...)");
        }
        catch (YamlDotNet.Core.YamlException e) { throw new InvalidDataException($"grid file '{path}': not valid YAML at line {e.Start.Line}: {e.Message}", e); }

        Exception Bad(string what) => new InvalidDataException($"grid file '{path}': {what}");
        var map = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
        foreach (var (k, v) in root.Children)
        {
            var key = Scalar(k) ?? throw Bad("keys must be plain names");
            if (!TopKeys.Contains(key)) throw Bad($"unknown key '{key}' (known: {string.Join(", ", TopKeys)})");
            map[key] = v;
        }
        string Resolve(string p) => Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(dir, p));
        var data = map.TryGetValue("data", out var dn) && Scalar(dn) is { Length: > 0 } ds ? Resolve(ds) : throw Bad("'data' (the dataset folder or CSV) is required");
        var output = outputOverride is not null ? Path.GetFullPath(outputOverride)
            : map.TryGetValue("output", out var on) && Scalar(on) is { Length: > 0 } os ? Resolve(os)
            : Path.Combine(dir, "runs", Path.GetFileNameWithoutExtension(full));
        var methods = List(map, "methods", path) ?? throw Bad("'methods' (a list of method names) is required");
        if (methods.Count == 0) throw Bad("'methods' is empty");
        var labeled = (List(map, "labeled", path) ?? new List<string>()).Select(s => (int?)Int(s, "labeled", path)).ToList();
        if (labeled.Count == 0) labeled.Add(null);
        var seeds = (List(map, "seeds", path) ?? new List<string> { "1337" }).Select(s => Int(s, "seeds", path)).ToList();
        var tag = map.TryGetValue("tag", out var tn) ? Scalar(tn) ?? "" : "";
        foreach (var m in methods.Append(tag == "" ? "x" : tag))
            if (!SafeName.IsMatch(m)) throw Bad($"'{m}' cannot be part of a run folder's name (letters, digits, . _ + - only)");
        Dup(methods, "methods"); Dup(labeled.Select(l => l?.ToString(CultureInfo.InvariantCulture) ?? ""), "labeled"); Dup(seeds.Select(s => s.ToString(CultureInfo.InvariantCulture)), "seeds");

        var train = Options(map, "train", GridOwned, path, Resolve) ?? new();
        List<(string, IReadOnlyList<string>)>? evaluate = new() { ("split", new[] { "test" }) };
        if (map.TryGetValue("evaluate", out var en))
        {
            if (en is YamlScalarNode s && Scalar(s) is "false" or "no" or "off") evaluate = null;
            else if (en is YamlScalarNode s2 && Scalar(s2) is "true" or "yes" or "on") { }
            else evaluate = Options(map, "evaluate", EvaluateOwned, path, Resolve);
        }

        var prms = new Dictionary<string, IReadOnlyList<(string, string)>>(StringComparer.Ordinal);
        if (map.TryGetValue("params", out var pn))
        {
            if (pn is not YamlMappingNode pm) throw Bad("'params' must map a method (or \"*\") to key: value pairs");
            foreach (var (mk, mv) in pm.Children)
            {
                var method = Scalar(mk) ?? throw Bad("'params' keys must be method names");
                if (method != "*" && !methods.Contains(method)) throw Bad($"params for '{method}', which is not in 'methods'");
                if (mv is not YamlMappingNode kv) throw Bad($"params.{method} must be key: value pairs");
                prms[method] = kv.Children.Select(p => (Scalar(p.Key) ?? throw Bad($"params.{method}: keys must be names"),
                    Scalar(p.Value) ?? throw Bad($"params.{method}.{Scalar(p.Key)}: expected one value"))).ToList();
            }
        }
        return new GridSpec(full, data, output, methods, labeled, seeds, tag, train, prms, evaluate);

        void Dup(IEnumerable<string> items, string key)
        {
            var d = items.GroupBy(x => x).FirstOrDefault(g => g.Count() > 1);
            if (d is not null) throw Bad($"'{key}' lists '{d.Key}' twice (two runs would share one folder)");
        }
    }

    /// <summary>The runs in a fixed order (labeled budget, then seed, then method as listed): array task i is run i.</summary>
    public IReadOnlyList<GridRun> Expand()
    {
        var runs = new List<GridRun>();
        foreach (var l in Labeled)
            foreach (var seed in Seeds)
                foreach (var m in Methods)
                {
                    string name = $"{m}{(Tag == "" ? "" : "-" + Tag)}{(l is int li ? "-" + li.ToString(CultureInfo.InvariantCulture) : "")}-s{seed.ToString(CultureInfo.InvariantCulture)}";
                    string folder = Path.Combine(Output, name);
                    var train = new List<string> { "train", "--data", Data };
                    if (l is int lv) train.AddRange(new[] { "--labeled", lv.ToString(CultureInfo.InvariantCulture) });
                    train.AddRange(new[] { "--method", m, "--seed", seed.ToString(CultureInfo.InvariantCulture), "--output", folder });
                    Append(train, Train);
                    foreach (var scope in new[] { "*", m })
                        if (Params.TryGetValue(scope, out var ps))
                            foreach (var (k, v) in ps) train.AddRange(new[] { "--param", $"{k}={v}" });
                    List<string>? eval = null; string? metrics = null;
                    if (Evaluate is not null)
                    {
                        string split = Evaluate.FirstOrDefault(e => e.Name == "split").Values?.FirstOrDefault() ?? "test";
                        string evalDir = Path.Combine(folder, "eval-" + split);
                        eval = new List<string> { "evaluate", "--data", Data };
                        if (l is int le) eval.AddRange(new[] { "--labeled", le.ToString(CultureInfo.InvariantCulture) });
                        eval.AddRange(new[] { "--checkpoint", Path.Combine(folder, "best.ckpt"), "--output", evalDir });
                        Append(eval, Evaluate);
                        // the evaluation runs with the training's thread count unless the grid says otherwise,
                        if (!Evaluate.Any(e => e.Name == "threads") && Train.FirstOrDefault(t => t.Name == "threads").Values is { Count: 1 } th)
                            eval.AddRange(new[] { "--threads", th[0] });
                        // and on the training's device
                        if (!Evaluate.Any(e => e.Name == "device") && Train.FirstOrDefault(t => t.Name == "device").Values is { Count: 1 } dv)
                            eval.AddRange(new[] { "--device", dv[0] });
                        metrics = Path.Combine(evalDir, "metrics.json");
                    }
                    runs.Add(new GridRun(runs.Count, name, m, l, seed, folder, train, eval, metrics));
                }
        return runs;
    }

    /// <summary>The run's train arguments with an option added or replaced (e.g. a thread count chosen by the runner).</summary>
    public static IReadOnlyList<string> WithOption(IReadOnlyList<string> args, string option, string value)
    {
        var list = args.ToList();
        int i = list.IndexOf(option);
        if (i >= 0 && i + 1 < list.Count) list[i + 1] = value; else list.AddRange(new[] { option, value });
        return list;
    }

    static void Append(List<string> args, IEnumerable<(string Name, IReadOnlyList<string> Values)> options)
    {
        foreach (var (name, values) in options)
        {
            if (values.Count == 0) { args.Add("--" + name); continue; }
            foreach (var v in values) args.AddRange(new[] { "--" + name, v });
        }
    }

    static List<(string, IReadOnlyList<string>)>? Options(Dictionary<string, YamlNode> map, string key, HashSet<string> owned, string path, Func<string, string> resolve)
    {
        if (!map.TryGetValue(key, out var node)) return null;
        if (node is not YamlMappingNode m) throw new InvalidDataException($"grid file '{path}': '{key}' must be option: value pairs (options without \"--\")");
        var list = new List<(string, IReadOnlyList<string>)>();
        foreach (var (k, v) in m.Children)
        {
            var name = (Scalar(k) ?? "").TrimStart('-');
            if (name.Length == 0) throw new InvalidDataException($"grid file '{path}': '{key}' has an empty option name");
            if (owned.Contains(name)) throw new InvalidDataException($"grid file '{path}': {key}.{name} is set by the grid itself (use the top-level keys data/methods/labeled/seeds/params/output)");
            IReadOnlyList<string> values = v switch
            {
                YamlSequenceNode seq => seq.Children.Select(c => Scalar(c) ?? throw new InvalidDataException($"grid file '{path}': {key}.{name}: nested lists are not options")).ToList(),
                _ => Scalar(v) switch
                {
                    "true" => Array.Empty<string>(),
                    "false" => null!,
                    null or "" => throw new InvalidDataException($"grid file '{path}': {key}.{name} has no value (write true for a flag)"),
                    var s => new[] { s },
                },
            };
            if (values is null) continue; // a flag switched off
            if (PathOptions.Contains(name)) values = values.Select(resolve).ToList();
            list.Add((name, values));
        }
        return list;
    }

    static List<string>? List(Dictionary<string, YamlNode> map, string key, string path)
    {
        if (!map.TryGetValue(key, out var node)) return null;
        return node switch
        {
            YamlSequenceNode seq => seq.Children.Select(c => Scalar(c) ?? throw new InvalidDataException($"grid file '{path}': '{key}' must be a list of plain values")).ToList(),
            YamlScalarNode s when Scalar(s) is { Length: > 0 } one => new List<string> { one },
            _ => throw new InvalidDataException($"grid file '{path}': '{key}' must be a list"),
        };
    }

    static int Int(string s, string key, string path) =>
        int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
        : throw new InvalidDataException($"grid file '{path}': '{key}' value '{s}' is not an integer");

    static string? Scalar(YamlNode n) => n is YamlScalarNode s ? s.Value : null;
}
