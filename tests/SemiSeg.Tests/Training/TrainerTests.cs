using SemiSeg.Inference;
using SemiSeg.Data;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;

namespace SemiSeg.Tests.Training;

public class TrainerTests
{
    static TrainOptions Options(string dir, long iterations, UNetConfig? net = null) => new()
    {
        OutputDir = dir, MaxIterations = iterations, PatchHeight = 32, PatchWidth = 32, BatchSize = 4, LabeledBatchSize = 4,
        ValidateEvery = 4, SaveEvery = 2, LogEvery = 1, Network = net ?? new UNetConfig(), Threads = Environment.ProcessorCount,
    };

    [Fact]
    public void TrainsOnThePhantomAndWritesTheRun()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 1, val: 1, test: 1, depth: 3, size: 32);
        var m = CustomDataset.Load(t["data"], 4);
        var run = t["run"];
        var result = new Trainer(Options(run, 8), m).Run();
        Assert.Equal(8, result.Iterations);
        foreach (var f in new[] { "best.ckpt", "last.ckpt", "config.json", "train.log", "validation.csv", "provenance.json" })
            Assert.True(File.Exists(Path.Combine(run, f)), f);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "validation.csv")).Length); // header + iterations 4 and 8
        Assert.Contains("\"max_iterations\": 8", File.ReadAllText(Path.Combine(run, "config.json")));
        Assert.Empty(Directory.GetFiles(run, "*.tmp"));
        // TensorBoard: every logged value under train/ at each log step, validation under val/ at 4 and 8, and the
        // validation case as a picture (one case here) at each validation
        var events = TensorBoardLogTests.ReadEvents(Assert.Single(Directory.GetFiles(Path.Combine(run, "tensorboard"), "events.out.tfevents.*")))
            .Where(e => e.Summary is not null).SelectMany(e => e.Summary.Value.Select(v => (v.Tag, e.Step, Image: v.ValueCase == Tensorboard.Summary.Types.Value.ValueOneofCase.Image))).ToList();
        Assert.Equal(Enumerable.Range(1, 8).Select(i => (long)i), events.Where(e => e.Tag == "train/loss").Select(e => e.Step));
        Assert.Equal(8, events.Count(e => e.Tag == "train/lr"));
        Assert.Equal(new long[] { 4, 8 }, events.Where(e => e.Tag == "val/mean_dice").Select(e => e.Step));
        Assert.Equal(new long[] { 4, 8 }, events.Where(e => e.Image).Select(e => e.Step));
        Assert.All(events.Where(e => e.Image), e => Assert.StartsWith("images/val/", e.Tag));
        // a second run into the same folder without --resume must refuse rather than overwrite
        Assert.Throws<IOException>(() => new Trainer(Options(run, 8), m).Run());
    }

    [Fact]
    public void WithoutTensorBoardNoEventFilesAreWritten()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 1, val: 1, test: 0, depth: 3, size: 32);
        new Trainer(Options(t["run"], 2) with { TensorBoard = false, ValidateEvery = 2 }, CustomDataset.Load(t["data"], 4)).Run();
        Assert.False(Directory.Exists(Path.Combine(t["run"], "tensorboard")));
    }

    [Fact]
    public void BcpStageTwoStartsFromTheBestStageOneCheckpointWithItsOptimizer()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 2, val: 1, test: 0, depth: 3, size: 32);
        var m = CustomDataset.Load(t["data"], 4);
        var run = t["run"];
        var o = Options(run, 5) with { Method = "bcp", BatchSize = 8, ValidateEvery = 1, MethodParams = new() { ["pretrain_iterations"] = "3" } };
        new Trainer(o, m).Run();
        var stageOne = Path.Combine(run, "stage1-best.ckpt");
        Assert.True(File.Exists(stageOne));
        var meta = CheckpointFile.ReadMeta(stageOne, out _);
        Assert.True(meta.HasTrainingState);               // the optimizer state is in it
        Assert.InRange(meta.Iteration, 1, 3);              // selected within stage 1
        Assert.Equal(meta.Iteration, meta.BestIteration);
        Assert.Contains($"stage 2 starts from the best stage-1 checkpoint (iteration {meta.Iteration}), optimizer state included",
            File.ReadAllText(Path.Combine(run, "train.log")));
    }

    [Theory]
    [InlineData(OptimizerKind.Sgd, 0)]
    [InlineData(OptimizerKind.Radam, 4)] // Adam-family moments are channels_last like the parameters: must still serialise
    [InlineData(OptimizerKind.Adamw, 0)]
    public void InterruptedRunResumesToTheSameWeights(OptimizerKind optimizer, long warmup)
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 0, val: 0, test: 0, depth: 3, size: 32);
        var m = CustomDataset.Load(t["data"], 4);
        // No dropout: every remaining source of randomness (batches, augmentation) is a function of the iteration.
        var net = new UNetConfig { Dropout = new double[5] };
        torch.manual_seed(0);
        new Trainer(Options(t["straight"], 6, net) with { Optimizer = optimizer, WarmupIterations = warmup, BaseLr = optimizer == OptimizerKind.Sgd ? 0.01 : 1e-3 }, m).Run();

        using (var cts = new CancellationTokenSource())
        {
            var o = Options(t["resumed"], 6, net) with { Optimizer = optimizer, WarmupIterations = warmup, BaseLr = optimizer == OptimizerKind.Sgd ? 0.01 : 1e-3 };
            var monitor = new Resume.StopAfter(3, cts);
            new Trainer(o, m, monitor).Run(cts.Token);
            var meta = CheckpointFile.ReadMeta(Path.Combine(t["resumed"], "last.ckpt"), out _);
            Assert.Equal(3, meta.Iteration);
            new Trainer(o with { Resume = true }, m).Run();
        }
        Resume.AssertSameWeights(Path.Combine(t["straight"], "last.ckpt"), Path.Combine(t["resumed"], "last.ckpt"));
    }

    [Fact]
    public void LearningRateScheduleWithWarmup()
    {
        var o = new TrainOptions { BaseLr = 2e-4, MaxIterations = 800, Schedule = LrSchedule.Cosine, WarmupIterations = 100 };
        Assert.Equal(2e-4 / 100, o.LearningRateAt(0), 12);            // first warm-up step
        Assert.Equal(2e-4 * 50 / 100 * 0.5 * (1 + Math.Cos(Math.PI * 49 / 800)), o.LearningRateAt(49), 12);
        Assert.Equal(2e-4 * 0.5 * (1 + Math.Cos(Math.PI * 400 / 800)), o.LearningRateAt(400), 12); // half-way: half the peak
        Assert.Equal(1e-4, o.LearningRateAt(400), 12);
        var poly = new TrainOptions { BaseLr = 0.01, MaxIterations = 1000 };
        Assert.Equal(0.01 * Math.Pow(0.5, 0.9), poly.LearningRateAt(500), 12);
        Assert.Throws<ArgumentException>(() => (o with { WarmupIterations = -1 }).Validate());
    }

    [Fact]
    public void EmptyLabeledSetIsRefused()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 0, unlabeled: 2, val: 0, test: 0, depth: 2, size: 32);
        var e = Assert.Throws<InvalidDataException>(() => CustomDataset.Load(t["data"], 4));
        Assert.Contains("labeled set is empty", e.Message);
    }
}
