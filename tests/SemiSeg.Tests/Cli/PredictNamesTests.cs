using SemiSeg.Data;
using SemiSeg.Training;

namespace SemiSeg.Tests.Cli;

public class PredictNamesTests
{
    [Fact]
    public void InputsSharingAStemGetDistinctMasksAndATrueCount()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 0, val: 0, test: 0, depth: 2, size: 32);
        new Trainer(new TrainOptions
        {
            OutputDir = t["run"], MaxIterations = 1, PatchHeight = 32, PatchWidth = 32, BatchSize = 2, LabeledBatchSize = 2, Threads = 1,
        }, CustomDataset.Load(t["data"], 4)).Run();
        var img = new Volume("case", 1, 32, 32, Enumerable.Range(0, 1024).Select(i => (i % 32) / 32f).ToArray());
        Directory.CreateDirectory(t["in"]);
        Hdf5.Write(t["in/case.h5"], img, as2D: true);
        Nifti.Write(t["in/case.nii"], img, asLabel: false);
        Nifti.Write(t["in/case.nii.gz"], img, asLabel: false);
        Png.WriteImage(t["in/case.png"], img.Image, 32, 32);
        Png.WriteImage(t["in/other.png"], img.Image, 32, 32);

        var (c, o, e) = CliTests.Run("predict", "-c", t["run/best.ckpt"], "-i", t["in"], "-o", t["out"]);
        Assert.True(c == 0, e);
        var written = Directory.GetFiles(t["out"]).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "case_h5_pred.nii.gz", "case_nii_pred.nii.gz", "case_niigz_pred.nii.gz", "case_png_pred.png", "other_pred.png" }, written);
        Assert.Contains("wrote 5 mask file(s)", o);

        var (c2, o2, e2) = CliTests.Run("predict", "-c", t["run/best.ckpt"], "-i", t["in"], "-o", t["outpng"], "--format", "png");
        Assert.True(c2 == 0, e2);
        Assert.Equal(5, Directory.GetFiles(t["outpng"]).Length);
        Assert.Contains("wrote 5 mask file(s)", o2);

        // a name that still collides after disambiguation is refused before anything is written
        Directory.CreateDirectory(t["in2"]);
        Hdf5.Write(t["in2/a.h5"], img, as2D: true);
        Nifti.Write(t["in2/a.nii"], img, asLabel: false);
        Nifti.Write(t["in2/a_h5.nii"], img, asLabel: false);
        var (c3, _, e3) = CliTests.Run("predict", "-c", t["run/best.ckpt"], "-i", t["in2"], "-o", t["out3"]);
        Assert.Equal(2, c3);
        Assert.Contains("would both be predicted into", e3);
        Assert.False(Directory.Exists(t["out3"]) && Directory.EnumerateFiles(t["out3"]).Any());
    }
}
