using SemiSeg.Data;
using SemiSeg.Training;

namespace SemiSeg.Tests.Training;

/// <summary>A broken file anywhere in a run's data stops the run before its first iteration, naming the file.</summary>
public class DataCheckTests
{
    static TrainOptions Tiny(string dir) => new()
    {
        OutputDir = dir, MaxIterations = 4, PatchHeight = 32, PatchWidth = 32, BatchSize = 2, LabeledBatchSize = 2,
        ValidateEvery = 4, SaveEvery = 4, LogEvery = 1, Threads = 1,
    };

    static void Cut(string path, double keep)
    {
        var b = File.ReadAllBytes(path);
        File.WriteAllBytes(path, b[..(int)(b.Length * keep)]);
    }

    [Theory]
    [InlineData("imagesVal/heart_v000.nii.gz")]   // read in full: found although only gzip's end is missing
    [InlineData("labelsVal/heart_v000.nii.gz")]
    [InlineData("imagesTr/heart_u000.nii.gz")]    // header level: cut inside the header
    [InlineData("imagesTs/heart_t000.nii.gz")]
    public void ABrokenFileFailsBeforeTheFirstIteration(string file)
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["d"], labeled: 2, unlabeled: 1, val: 1, test: 1, depth: 2, size: 32);
        var m = CustomDataset.Load(t["d"], 4);
        Cut(Path.Combine(t["d"], file), file.Contains("Val") ? 0.9 : 0.01);
        var monitor = new Counting();
        var e = Assert.Throws<InvalidDataException>(() => new Trainer(Tiny(t["run"]), m, monitor).Run());
        Assert.Contains(Path.GetFileName(file), e.Message);
        Assert.Equal(0, monitor.Iterations);
        Assert.False(File.Exists(t["run/train.log"]));
        Assert.False(File.Exists(t["run/last.ckpt"]));
    }

    sealed class Counting : ITrainingMonitor
    {
        public int Iterations;
        public void OnIteration(IterationInfo info) => Iterations++;
    }

    [Fact]
    public void AnUncompressedNiftiCutShortIsFoundFromItsHeader()
    {
        using var t = new TempDir();
        Nifti.Write(t["a.nii"], new Volume("a", 2, 8, 8, new float[128]), asLabel: false);
        Cut(t["a.nii"], 0.8);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => VolumeIO.CheckHeader(t["a.nii"])).Message);
    }

    [SkippableFact]
    public void RealAcdcIsCheckedInSeconds()
    {
        var root = SharedData.AcdcRoot();
        Skip.If(root == null, SharedData.MissingMessage);
        var m = AcdcDataset.Load(root!, 7);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        DataCheck.Run(VolumeSplit.FromManifest(m));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"took {sw.Elapsed}");
    }
}
