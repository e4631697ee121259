using SemiSeg.Data;
using SemiSeg.Models;
using SemiSeg.Reporting;
using SemiSeg.Training;

namespace SemiSeg.Tests.Reporting;

public class CurvesPngTests
{
    [Fact]
    public void ATrainingRunKeepsItsCurvesPngCurrent()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 1, val: 1, test: 0, depth: 3, size: 32);
        var run = t["run"];
        var o = new TrainOptions
        {
            OutputDir = run, MaxIterations = 4, PatchHeight = 32, PatchWidth = 32, BatchSize = 4, LabeledBatchSize = 4,
            ValidateEvery = 2, SaveEvery = 2, LogEvery = 1, Network = new UNetConfig(), Threads = 1, TensorBoard = false,
        };
        var curves = new CurvesPng(run);
        long lastValidation = 0;
        var watch = new Watch(() => lastValidation = File.Exists(Path.Combine(run, "curves.png")) ? new FileInfo(Path.Combine(run, "curves.png")).Length : 0);
        new Trainer(o, CustomDataset.Load(t["data"], 4), ITrainingMonitor.Both(curves, watch)).Run();
        Assert.True(lastValidation > 0, "curves.png exists once the validation at iteration 4 has been drawn");
        var png = StbImageSharp.ImageResult.FromMemory(File.ReadAllBytes(Path.Combine(run, "curves.png")), StbImageSharp.ColorComponents.RedGreenBlue);
        Assert.Equal((Charts.Width, Charts.Height), (png.Width, png.Height));
        Assert.Empty(Directory.GetFiles(run, "*.tmp"));
    }

    [Fact]
    public void AFolderWithNothingToDrawLeavesNoPictureAndDoesNotThrow()
    {
        using var t = new TempDir();
        Directory.CreateDirectory(t["run"]);
        File.WriteAllText(Path.Combine(t["run"], "train.log"), "not a SemiSeg log\n");
        var warnings = new List<string>();
        new CurvesPng(t["run"], warnings.Add).Draw();
        Assert.False(File.Exists(Path.Combine(t["run"], "curves.png")));
    }

    sealed class Watch(Action onValidation) : ITrainingMonitor
    {
        public void OnValidation(ValidationInfo info) => onValidation();
    }
}
