using System.Diagnostics;
using SemiSeg.Grid;
using SemiSeg.Reporting;
using SemiSeg.Tests.Cli;

namespace SemiSeg.Tests.Grid;

public class GridSpecTests
{
    static string Write(TempDir dir, string yaml, string name = "grid.yaml")
    {
        File.WriteAllText(dir[name], yaml);
        return dir[name];
    }

    const string Basic = """
        data: data
        methods: [supervised, mean-teacher]
        labeled: [3, 7]
        seeds: [1, 2]
        train: {iterations: 100, patch-size: 96, no-augment: true, linear-resize: false, threads: 1, config: base.yaml}
        params:
          "*": {rampup: 5}
          mean-teacher: {consistency_start: 10}
        """;

    [Fact]
    public void TheEvaluationRunsOnTheTrainingsDevice()
    {
        using var dir = new TempDir();
        var run = GridSpec.Load(Write(dir, "data: data\nmethods: [supervised]\nseeds: [1]\ntrain: {iterations: 10, device: cuda:1}\n")).Expand().Single();
        Assert.Equal(new[] { "--device", "cuda:1" }, run.TrainArgs.SkipWhile(a => a != "--device").Take(2));
        Assert.Equal(new[] { "--device", "cuda:1" }, run.EvaluateArgs!.SkipWhile(a => a != "--device").Take(2));
    }

    [Fact]
    public void ExpandsMethodsBudgetsAndSeedsToStableNamesAndExactArguments()
    {
        using var dir = new TempDir();
        var spec = GridSpec.Load(Write(dir, Basic));
        var runs = spec.Expand();
        Assert.Equal(8, runs.Count);
        // budget, then seed, then method: array task i is always the same run
        Assert.Equal(new[] { "supervised-3-s1", "mean-teacher-3-s1", "supervised-3-s2", "mean-teacher-3-s2", "supervised-7-s1", "mean-teacher-7-s1", "supervised-7-s2", "mean-teacher-7-s2" },
            runs.Select(r => r.Name));
        Assert.Equal(Enumerable.Range(0, 8), runs.Select(r => r.Index));
        Assert.Equal(Path.Combine(dir.Path, "runs", "grid"), spec.Output); // default output: runs/<grid name> beside the file
        var mt = runs[3];
        Assert.Equal(new[] { "train", "--data", dir["data"], "--labeled", "3", "--method", "mean-teacher", "--seed", "2", "--output", Path.Combine(spec.Output, "mean-teacher-3-s2"),
            "--iterations", "100", "--patch-size", "96", "--no-augment", "--threads", "1", "--config", dir["base.yaml"],
            "--param", "rampup=5", "--param", "consistency_start=10" }, mt.TrainArgs);
        Assert.DoesNotContain("consistency_start=10", runs[0].TrainArgs.Select(a => a)); // per-method params stay with their method
        // evaluation of best.ckpt on the test split by default, with the training's threads
        Assert.Equal(new[] { "evaluate", "--data", dir["data"], "--labeled", "3", "--checkpoint", Path.Combine(mt.Folder, "best.ckpt"),
            "--output", Path.Combine(mt.Folder, "eval-test"), "--split", "test", "--threads", "1" }, mt.EvaluateArgs);
        Assert.Equal(Path.Combine(mt.Folder, "eval-test", "metrics.json"), mt.MetricsPath);
        // the same file gives the same runs
        Assert.Equal(runs.Select(r => string.Join(' ', r.TrainArgs)), GridSpec.Load(dir["grid.yaml"]).Expand().Select(r => string.Join(' ', r.TrainArgs)));
    }

    [Fact]
    public void WithoutBudgetsOrEvaluationNamesOmitTheBudget()
    {
        using var dir = new TempDir();
        var runs = GridSpec.Load(Write(dir, "data: /d\noutput: out\nmethods: [cps]\nseeds: 7\ntag: v2\nevaluate: false\n")).Expand();
        var run = Assert.Single(runs);
        Assert.Equal("cps-v2-s7", run.Name);
        Assert.Null(run.EvaluateArgs);
        Assert.Null(run.MetricsPath);
        Assert.DoesNotContain("--labeled", run.TrainArgs);
        Assert.Equal(Path.Combine(dir["out"], "cps-v2-s7"), run.Folder);
    }

    [Theory]
    [InlineData("data: d\nmethods: [a]\nsede: [1]\n", "unknown key 'sede'")]
    [InlineData("methods: [a]\n", "'data'")]
    [InlineData("data: d\n", "'methods'")]
    [InlineData("data: d\nmethods: [a]\nseeds: [1, 1]\n", "'seeds' lists '1' twice")]
    [InlineData("data: d\nmethods: [a]\nseeds: [x]\n", "'seeds' value 'x' is not an integer")]
    [InlineData("data: d\nmethods: [a]\ntrain: {seed: 3}\n", "train.seed is set by the grid itself")]
    [InlineData("data: d\nmethods: [a]\ntrain: {output: o}\n", "train.output is set by the grid itself")]
    [InlineData("data: d\nmethods: [a/b]\n", "cannot be part of a run folder's name")]
    [InlineData("data: d\nmethods: [a]\nparams: {b: {k: 1}}\n", "params for 'b', which is not in 'methods'")]
    [InlineData("data: d\nmethods: [a]\ntrain: {iterations: }\n", "train.iterations has no value")]
    [InlineData("data: [d\n", "not valid YAML")]
    public void RefusesABadGridFileByNameAndKey(string yaml, string expected)
    {
        using var dir = new TempDir();
        var path = Write(dir, yaml);
        var e = Assert.Throws<InvalidDataException>(() => GridSpec.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void TheCliChecksEveryOptionBeforeRunningAnything()
    {
        using var dir = new TempDir();
        var path = Write(dir, "data: d\nmethods: [supervised]\ntrain: {iteratons: 5}\n");
        var (code, _, err) = CliTests.Run("grid", "list", path);
        Assert.Equal(2, code);
        Assert.Contains(path, err);
        Assert.Contains("iteratons", err);
        path = Write(dir, "data: d\nmethods: [no-such-method]\n", "g2.yaml");
        (code, _, err) = CliTests.Run("grid", "list", path);
        Assert.Equal(2, code);
        Assert.Contains("unknown method 'no-such-method'", err);
    }

    [Theory]
    [InlineData(new[] { 0, 1, 2, 5, 7, 8 }, "0-2,5,7-8")]
    [InlineData(new[] { 3 }, "3")]
    [InlineData(new[] { 4, 2, 3, 3 }, "2-4")]
    public void ArraySpecUsesSlurmRanges(int[] indices, string expected) => Assert.Equal(expected, SlurmArray.ArraySpec(indices));

    [Fact]
    public void TheSlurmScriptRequeuesOnlyTasksStoppedBySignalAndIsValidBash()
    {
        using var dir = new TempDir();
        var spec = GridSpec.Load(Write(dir, "data: d\nmethods: [supervised]\nseeds: [1, 2, 3]\n"));
        var script = SlurmArray.Script(spec, "/opt/semi seg/semiseg", new SlurmResources("gpu", "gpu:1", "24:00:00", 8, "32G", 2), new[] { 0, 2 });
        Assert.Contains("#SBATCH --array=0,2%2\n", script);
        Assert.Contains("#SBATCH --partition=gpu\n", script);
        Assert.Contains("#SBATCH --gres=gpu:1\n", script);
        Assert.Contains("#SBATCH --time=24:00:00\n", script);
        Assert.Contains("#SBATCH --cpus-per-task=8\n", script);
        Assert.Contains("#SBATCH --mem=32G\n", script);
        Assert.Contains("#SBATCH --requeue\n", script);
        Assert.Contains("#SBATCH --signal=B:USR1@120\n", script);
        Assert.Contains("trap 'kill -TERM \"$child\" 2>/dev/null' TERM USR1", script);
        Assert.Contains("if [ \"$rc\" -eq 143 ] && [ ! -e " + SlurmArray.Quote(SlurmArray.CancelledMarker(spec)) + " ]", script);
        Assert.Contains("scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"", script);
        Assert.Contains("/opt/semi seg/semiseg grid task", script); // the command is inserted as the user wrote it
        File.WriteAllText(dir["s.sh"], script);
        var p = Process.Start(new ProcessStartInfo("bash", new[] { "-n", dir["s.sh"] }) { RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, err);
        Assert.Throws<ArgumentException>(() => SlurmArray.Script(spec, "semiseg", new SlurmResources(), Array.Empty<int>()));
    }

    [Fact]
    public void StateFollowsTheRunFolder()
    {
        using var dir = new TempDir();
        var spec = GridSpec.Load(Write(dir, "data: d\nmethods: [supervised]\n"));
        var run = spec.Expand()[0];
        Assert.Equal(RunState.Pending, GridState.Of(spec, run));
        Directory.CreateDirectory(run.Folder);
        File.WriteAllText(Path.Combine(run.Folder, "last.ckpt"), "x");
        Assert.Equal(RunState.Interrupted, GridState.Of(spec, run));
        using (new FileStream(Path.Combine(run.Folder, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
            Assert.Equal(RunState.Running, GridState.Of(spec, run));
        Assert.Equal(RunState.Interrupted, GridState.Of(spec, run)); // a lock nobody holds is not a running run
        GridState.Record(spec, run, "training", 2, newAttempt: true);
        Assert.Equal(RunState.Failed, GridState.Of(spec, run));
        GridState.Record(spec, run, "trained", 0, newAttempt: false);
        Assert.Equal(RunState.Trained, GridState.Of(spec, run));
        Assert.Equal(1, GridState.ReadStatus(spec, run)!.Attempts);
        Directory.CreateDirectory(Path.GetDirectoryName(run.MetricsPath)!);
        File.WriteAllText(run.MetricsPath!, "{\"mean\": {\"dice\": 0.8125}}");
        Assert.Equal(RunState.Done, GridState.Of(spec, run));
        Assert.Equal(0.8125, GridState.EvaluatedDice(run));
    }
}

public class SeedAggregateTests
{
    static RunRecord Run(string name, string method, string data, params double[] caseDice) =>
        new(name, "/x/" + name, method, data, "/x/" + name + "/m.json", caseDice.Average(), caseDice.Average() * 0.8, 3, 1,
            Array.Empty<(string, double)>(), caseDice.Select((d, i) => (Key: $"case{i}", d)).ToDictionary(k => k.Key, k => k.d), "medpy", double.NaN, 0, double.NaN);

    [Fact]
    public void MeansOverSeedsAndPairsEachRunWithTheBaselineOfItsSeed()
    {
        var runs = new[]
        {
            Run("supervised-3-s1", "supervised", "A", 0.5, 0.6, 0.7),
            Run("supervised-3-s2", "supervised", "A", 0.4, 0.5, 0.9),
            Run("mt-3-s1", "mean-teacher", "A", 0.55, 0.62, 0.71),
            Run("mt-3-s2", "mean-teacher", "A", 0.45, 0.49, 0.95),
            Run("mt-3-s3", "mean-teacher", "A", 0.1, 0.1, 0.1),          // no baseline of seed 3: not paired
            Run("supervised-7-s1", "supervised", "B", 0.9, 0.9, 0.9),    // another split: its own group
            Run("single", "supervised", "A", 0.9, 0.9, 0.9),             // not a seed run
        };
        var groups = SeedAggregate.Aggregate(runs);
        Assert.Equal(new[] { "supervised-3", "mt-3", "supervised-7" }, groups.Select(g => g.Name));
        var sup = groups[0];
        Assert.True(sup.IsBaseline);
        Assert.Equal(new[] { 1, 2 }, sup.Seeds);
        var mt = groups[1];
        Assert.Same(sup, mt.Baseline);
        Assert.Equal(6, mt.Pairs);
        var diffs = new[] { 0.55 - 0.5, 0.62 - 0.6, 0.71 - 0.7, 0.45 - 0.4, 0.49 - 0.5, 0.95 - 0.9 }; // as the runs subtract them (not rounded to ties)
        Assert.Equal(diffs.Average(), mt.DeltaDice, 12);
        Assert.Equal(WilcoxonSignedRank.Test(diffs).P, mt.Test!.P, 12);
        var (mean, sd) = SeedAggregate.MeanSd(mt.Runs.Select(r => r.Dice));
        var dice = new[] { (0.55 + 0.62 + 0.71) / 3, (0.45 + 0.49 + 0.95) / 3, 0.1 };
        Assert.Equal(dice.Average(), mean, 12);
        Assert.Equal(Math.Sqrt(dice.Sum(x => (x - dice.Average()) * (x - dice.Average())) / 2), sd, 12);
        var md = SeedAggregate.ToMarkdown(groups);
        Assert.Contains("| mt-3 | mean-teacher | 1,2,3 |", md);
        Assert.Contains("| supervised-3 | supervised | 1,2 |", md);
    }
}

/// <summary>The grid files shipped in grids/ load and pass the CLI's option check.</summary>
public class ShippedGridTests
{
    [Fact]
    public void EveryShippedGridIsValid()
    {
        string? root = null;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null && root is null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "SemiSeg.sln"))) root = d.FullName;
        var files = Directory.GetFiles(Path.Combine(root!, "grids"), "*.yaml");
        Assert.NotEmpty(files);
        foreach (var f in files)
        {
            var (code, stdout, stderr) = CliTests.Run("grid", "list", f);
            Assert.True(code == 0, $"{f}: {stderr}");
            Assert.Contains("runs in ", stdout);
        }
        var table = GridSpec.Load(Path.Combine(root!, "grids", "acdc-cpu-table.yaml"));
        Assert.Equal(Path.GetFullPath(Path.Combine(root!, "..", "shared", "data", "acdc")), table.Data);
        Assert.Equal(40, table.Expand().Count); // 10 methods x 2 budgets x 2 seeds
    }
}
