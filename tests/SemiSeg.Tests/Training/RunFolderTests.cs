using SemiSeg.Runtime;
using SemiSeg.Inference;
using System.Text;
using SemiSeg.Data;
using SemiSeg.Models;
using SemiSeg.Training;

namespace SemiSeg.Tests.Training;

/// <summary>A run folder is owned by one run, keeps one record per validation and never loses its best model.</summary>
public class RunFolderTests
{
    [Fact]
    public void ASecondWriterIsRefusedAndAStaleLockIsRecovered()
    {
        using var t = new TempDir();
        using (var first = RunFolder.Open(t["run"], resume: false))
        {
            var e = Assert.Throws<IOException>(() => RunFolder.Open(t["run"], resume: false));
            Assert.Contains("in use by another training run", e.Message);
            Assert.Contains(t["run"], e.Message);
        }
        // the lock file stays behind (as after kill -9: the OS released the lock with the process); it does not block
        Assert.True(File.Exists(Path.Combine(t["run"], RunFolder.LockName)));
        using (RunFolder.Open(t["run"], resume: false)) { }
    }

    [Theory]
    [InlineData("best.ckpt")]
    [InlineData("validation.csv")]
    [InlineData("train.log")]
    public void AFolderWithARunButNoLastCheckpointIsRefused(string file)
    {
        using var t = new TempDir();
        Directory.CreateDirectory(t["run"]);
        File.WriteAllText(Path.Combine(t["run"], file), "x");
        var e = Assert.Throws<IOException>(() => RunFolder.Open(t["run"], resume: false));
        Assert.Contains(file, e.Message);
        Assert.Equal("x", File.ReadAllText(Path.Combine(t["run"], file)));
    }

    [Fact]
    public void ResumeWithoutLastCheckpointIsAnError()
    {
        using var t = new TempDir();
        var e = Assert.Throws<IOException>(() => RunFolder.Open(t["nothing"], resume: true));
        Assert.Contains("no last.ckpt", e.Message);
    }

    static int DeadPid()
    {
        for (int pid = 999_999; ; pid--)
        {
            try { using var p = System.Diagnostics.Process.GetProcessById(pid); }
            catch (ArgumentException) { return pid; }
        }
    }

    [Fact]
    public void OrphanedTemporaryFilesOfDeadWritersAreRemoved()
    {
        using var t = new TempDir();
        Directory.CreateDirectory(t["run"]);
        var orphan = Path.Combine(t["run"], $".last.ckpt.{DeadPid()}.{Guid.NewGuid():N}.tmp");
        var live = Path.Combine(t["run"], $".best.ckpt.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        var other = Path.Combine(t["run"], ".notes.tmp");
        foreach (var f in new[] { orphan, live, other }) File.WriteAllText(f, "partial");
        using var folder = RunFolder.Open(t["run"], resume: false);
        Assert.Equal(1, folder.OrphansRemoved);
        Assert.False(File.Exists(orphan));
        Assert.True(File.Exists(live));
        Assert.True(File.Exists(other));
    }

    static void WriteBestMeta(string path, double best, long bestIt)
    {
        var meta = new CheckpointMeta { PatchHeight = 32, PatchWidth = 32, Iteration = bestIt, BestMetric = best, BestIteration = bestIt };
        using var w = new BinaryWriter(File.Create(path), Encoding.UTF8);
        w.Write(Encoding.ASCII.GetBytes("SEMISEG\n"));
        w.Write(System.Text.Json.JsonSerializer.Serialize(meta, JsonFormat.Options));
    }

    [Fact]
    public void ResumeDropsValidationRowsAfterTheCheckpointAndKeepsTheBestScore()
    {
        using var t = new TempDir();
        Directory.CreateDirectory(t["run"]);
        File.WriteAllText(Path.Combine(t["run"], "last.ckpt"), "stand-in");
        var csv = Path.Combine(t["run"], "validation.csv");
        File.WriteAllText(csv, "iteration,mean_dice,mean_hd95\n10,0.1000,5\n20,0.3000,4\n30,0.2000,4\n40,0.5000,3\n50,0.4000,3\n");
        // killed at 50 after saving last.ckpt at 30: best.ckpt is the iteration-40 model (0.5)
        WriteBestMeta(Path.Combine(t["run"], "best.ckpt"), 0.5, 40);
        using var folder = RunFolder.Open(t["run"], resume: true);
        var (best, bestIt) = folder.PrepareResume(30, 0.3, 20);
        Assert.Equal((0.5, 40L), (best, bestIt));
        Assert.Equal(new[] { "iteration,mean_dice,mean_hd95", "10,0.1000,5", "20,0.3000,4", "30,0.2000,4" }, File.ReadAllLines(csv));
        // validation.csv alone can hold the best score (best.ckpt's metadata older or missing)
        File.Delete(Path.Combine(t["run"], "best.ckpt"));
        File.WriteAllText(csv, "iteration,mean_dice,mean_hd95\n10,0.1000,5\n20,0.6000,4\n");
        Assert.Equal((0.6, 20L), folder.PrepareResume(30, 0.3, 10));
    }

    static TrainOptions Tiny(string dir, string method, bool resume = false) => new()
    {
        OutputDir = dir, Method = method, MaxIterations = 2, PatchHeight = 32, PatchWidth = 32, BatchSize = 4, LabeledBatchSize = 2,
        ValidateEvery = 2, SaveEvery = 2, LogEvery = 1, Resume = resume, Threads = 1,
    };

    [Fact]
    public void ResumingAsAnotherMethodNamesBothAndBitFlipsFailTheChecksum()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 2, val: 1, test: 0, depth: 2, size: 32);
        var m = CustomDataset.Load(t["data"], 4);
        new Trainer(Tiny(t["run"], "mean-teacher"), m).Run();
        var e = Assert.Throws<InvalidDataException>(() => new Trainer(Tiny(t["run"], "ua-mt", resume: true) with { MaxIterations = 4 }, m).Run());
        Assert.Contains("'mean-teacher'", e.Message);
        Assert.Contains("'ua-mt'", e.Message);
        Assert.Contains("last.ckpt", e.Message);

        var best = Path.Combine(t["run"], "best.ckpt");
        CheckpointFile.LoadNetwork(best).net.Dispose();
        var bytes = File.ReadAllBytes(best);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(t["flipped.ckpt"], bytes);
        var e2 = Assert.Throws<InvalidDataException>(() => CheckpointFile.LoadNetwork(t["flipped.ckpt"]));
        Assert.Contains("flipped.ckpt", e2.Message);
        Assert.Contains("checksum mismatch", e2.Message);
        File.WriteAllBytes(t["cut.ckpt"], bytes[..^20]);
        Assert.Contains("cut.ckpt", Assert.Throws<InvalidDataException>(() => CheckpointFile.LoadNetwork(t["cut.ckpt"])).Message);
    }
}
