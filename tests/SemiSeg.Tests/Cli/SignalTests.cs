using SemiSeg.Inference;
using System.Diagnostics;
using SemiSeg.Data;
using SemiSeg.Training;

namespace SemiSeg.Tests.Cli;

/// <summary>SIGTERM, what Slurm and Kubernetes send before they stop a job, ends a training like Ctrl+C: the iteration
/// finishes, last.ckpt is written, the exit code says so (143), and --resume continues from there.</summary>
public class SignalTests
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Kill(int pid, int signal);

    [Fact]
    public void SigtermSavesLastCheckpointAndTheRunResumes()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 0, val: 0, test: 0, depth: 3, size: 32);
        var cli = Path.Combine(AppContext.BaseDirectory, "SemiSeg.Cli.dll");
        var run = t["run"];
        string[] Args(bool resume) => new[] { cli, "train", "--data", t["data"], "--num-classes", "4", "--output", run, "--iterations", "100000",
            "--patch-size", "32", "--batch-size", "2", "--labeled-bs", "2", "--threads", "1", "--log-every", "1", "--save-every", "100000", "--quiet" }
            .Concat(resume ? new[] { "--resume" } : Array.Empty<string>()).ToArray();
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in Args(false)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var log = Path.Combine(run, "train.log");
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < 120 && !(File.Exists(log) && File.ReadAllText(log).Contains(" it 3 "))) Thread.Sleep(100);
        Assert.True(File.Exists(log) && File.ReadAllText(log).Contains(" it 3 "), "the training did not start within 120 s");
        Assert.Equal(0, Kill(p.Id, 15)); // SIGTERM
        Assert.True(p.WaitForExit(120_000), "the process did not stop within 120 s of SIGTERM");
        Assert.Equal(143, p.ExitCode);
        Assert.Contains("SIGTERM", stderr.Result);
        var meta = CheckpointFile.ReadMeta(Path.Combine(run, "last.ckpt"), out _);
        Assert.True(meta.Iteration >= 3, $"last.ckpt at iteration {meta.Iteration}");

        // the requeued task: the same command with --resume continues from that iteration
        var resume = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in Args(true).Select(a => a == "100000" ? (meta.Iteration + 2).ToString() : a)) resume.ArgumentList.Add(a);
        using var q = Process.Start(resume)!;
        q.StandardOutput.ReadToEnd();
        Assert.True(q.WaitForExit(120_000));
        Assert.Equal(0, q.ExitCode);
        Assert.Contains($"resumed from {Path.Combine(run, "last.ckpt")} at iteration {meta.Iteration}", File.ReadAllText(log));
        Assert.Equal(meta.Iteration + 2, CheckpointFile.ReadMeta(Path.Combine(run, "last.ckpt"), out _).Iteration);
    }
}
