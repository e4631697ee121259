using System.Diagnostics;
using System.Runtime.InteropServices;
using SemiSeg.Grid;
using SemiSeg.Tests.Cli;

namespace SemiSeg.Tests.Grid;

/// <summary>`semiseg grid run` as a user runs it: a separate process (the CLI beside the test binary) that starts one
/// SemiSeg process per run, two at a time, on a phantom dataset; SIGTERM to the grid stops every run with last.ckpt
/// written, and running the grid again resumes them and skips what is done.</summary>
public class GridRunTests
{
    static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "SemiSeg.Cli.dll");

    static Process Start(string workdir, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workdir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Cli);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    static (int Code, string Out) Finish(Process p, int seconds)
    {
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(seconds * 1000)) { p.Kill(entireProcessTree: true); throw new TimeoutException($"grid did not finish in {seconds} s: {output.Result}{err.Result}"); }
        return (p.ExitCode, output.Result + err.Result);
    }

    [DllImport("libc", EntryPoint = "kill")] static extern int Kill(int pid, int sig);

    [Fact]
    public void RunsTwoAtATimeStopsOnSigtermAndResumesSkippingFinishedRuns()
    {
        using var dir = new TempDir();
        Assert.Equal(0, CliTests.Run("phantom", "cardiac", "-o", dir["phantom"]).code);
        File.WriteAllText(dir["grid.yaml"], """
            data: phantom
            output: runs
            methods: [supervised]
            labeled: [2]
            seeds: [1, 2]
            train: {iterations: 400, patch-size: 32, batch-size: 4, labeled-bs: 2, val-every: 400, save-every: 5, log-every: 5, workers: 1, threads: 1}
            evaluate: {split: val}
            """);
        var spec = GridSpec.Load(dir["grid.yaml"]);
        var runs = spec.Expand();

        // first: stop the whole grid with SIGTERM once both runs have written a checkpoint
        var grid = Start(dir.Path, "grid", "run", "grid.yaml", "--jobs", "2");
        var sw = Stopwatch.StartNew();
        while (!runs.All(r => File.Exists(Path.Combine(r.Folder, "last.ckpt"))) && sw.Elapsed < TimeSpan.FromMinutes(4) && !grid.HasExited) Thread.Sleep(200);
        Assert.False(grid.HasExited, "the grid ended before both runs had saved a checkpoint");
        Assert.Equal(0, Kill(grid.Id, 15));
        var (code, text) = Finish(grid, 240);
        Assert.True(code == 143, text);
        Assert.Contains("SIGTERM: asking 2 run(s) to save last.ckpt and stop", text);
        Assert.All(runs, r => Assert.Equal(RunState.Interrupted, GridState.Of(spec, r)));

        // the same command again: both resume from their checkpoints and finish with an evaluation
        (code, text) = Finish(Start(dir.Path, "grid", "run", "grid.yaml", "--jobs", "2"), 900);
        Assert.True(code == 0, text);
        Assert.All(runs, r =>
        {
            Assert.Equal(RunState.Done, GridState.Of(spec, r));
            Assert.Contains(File.ReadLines(Path.Combine(r.Folder, "train.log")), l => l.Contains("resumed from") && l.Contains("last.ckpt"));
            Assert.Equal(2, GridState.ReadStatus(spec, r)!.Attempts);
        });

        // a third time: nothing to do
        (code, text) = Finish(Start(dir.Path, "grid", "run", "grid.yaml"), 120);
        Assert.Equal(0, code);
        Assert.Contains("2 runs, 0 to do", text);

        var (rc, report, _) = CliTests.Run("report", dir["runs"], "--eval", "eval-val");
        Assert.Equal(0, rc);
        Assert.Contains("### Over seeds:", report);
        Assert.Contains("| supervised-2 | supervised | 1,2 |", report);
    }

    /// <summary>tests/slurm/grid-on-slurm.sh against a single-node Slurm it starts itself (needs root, slurm-wlm and
    /// munge; skipped, saying why, where the daemons cannot start).</summary>
    [SkippableFact]
    public void GridOnARealSlurmRequeuesAndResumes()
    {
        string script = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "slurm", "grid-on-slurm.sh"));
        Skip.IfNot(File.Exists(script), $"{script} not found");
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script); psi.ArgumentList.Add($"dotnet {Cli}");
        var (code, text) = Finish(Process.Start(psi)!, 1500);
        Skip.If(code == 77, text.Trim().Split('\n').LastOrDefault(l => l.StartsWith("SKIP:")) ?? text);
        Console.WriteLine(text);
        Assert.True(code == 0, text);
        Assert.Contains("PASS:", text);
    }
}
