using SemiSeg.Inference;
using SemiSeg.Data;
using SemiSeg.Methods.Volume;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;

namespace SemiSeg.Tests.Training;

public class TrainerVolumeTests
{
    static TrainOptions Options(string dir, string method, long iterations, bool dropout = true) => new()
    {
        OutputDir = dir, Method = method, MaxIterations = iterations, PatchDepth = 16, PatchHeight = 32, PatchWidth = 32,
        BatchSize = 2, LabeledBatchSize = 1, SaveEvery = 2, LogEvery = 1, ValidateEvery = 4, ChannelsLast = false,
        Network = new UNetConfig { NumClasses = 2 }, Network3D = new Net3DConfig { Dropout = dropout }, Threads = Environment.ProcessorCount,
    };

    [Fact]
    public void C3s3In3DTrainsAVNetAndAResNet34AndValidatesTheirEnsemble()
    {
        using var t = new TempDir();
        AtriumPhantom.WriteLa(t["la"], train: 4, test: 1, depth: 16, size: 32);
        var la = LeftAtriumDataset.Load(t["la"], labeled: 2);
        var r = new Trainer(Options(t["run"], "c3s3", 2) with { ValidateEvery = 2 }, la with { Val = la.Test }).Run();
        Assert.True(double.IsFinite(r.BestDice) && r.BestDice >= 0);
        var (net, meta) = CheckpointFile.LoadAnyNetwork(r.BestCheckpoint);
        using (net)
        {
            var e = Assert.IsType<SoftmaxEnsemble>(net);
            Assert.Equal(new[] { "net3d", "resnet34-3d" }, meta.Ensemble);
            Assert.IsType<VNet>(e.Members[0]);
            Assert.IsType<ResNet34Net3D>(e.Members[1]);
        }
        var log = File.ReadAllText(Path.Combine(t["run"], "train.log"));
        Assert.Contains("odcl", log);
        // resumes with both networks and projectors
        var r2 = new Trainer(Options(t["run"], "c3s3", 3) with { ValidateEvery = 2, Resume = true }, la with { Val = la.Test }).Run();
        Assert.Equal(3, r2.Iterations);
    }

    [Fact]
    public void ResNet34Net3DHasTheReferencesStagesAndShapes()
    {
        torch.manual_seed(4);
        using var net = new ResNet34Net3D(1, 2, 16, dropout: true);
        // 5-D weights: the 7×7×7 stem, two per basic block of resnet34's 3/4/6/3, the 4 strided projection shortcuts, the 4
        // transposed convolutions up, the decoder's 3/3/2/1 convolutions and the output convolution
        var convs = net.named_parameters().Count(p => p.parameter.dim() == 5);
        Assert.Equal(1 + 2 * (3 + 4 + 6 + 3) + 4 + 4 + (3 + 3 + 2 + 1) + 1, convs);
        var (logits, features) = net.ForwardWithFeatures(torch.randn(new long[] { 1, 1, 16, 32, 32 }));
        Assert.Equal(new long[] { 1, 2, 16, 32, 32 }, logits.shape);
        Assert.Equal(new long[] { 1, 16, 16, 32, 32 }, features.shape);
    }

    [Fact]
    public void MnRestartsTheLearningRateAtTheStageSwitchInTraining()
    {
        using var t = new TempDir();
        AtriumPhantom.WriteLa(t["la"], train: 3, test: 1, depth: 16, size: 32);
        var la = LeftAtriumDataset.Load(t["la"], labeled: 2);
        var o = Options(t["run"], "mn", 8) with { Schedule = LrSchedule.Cosine, BaseLr = 0.01, MethodParams = new() { ["warmup_fraction"] = "0.5" } };
        new Trainer(o, la).Run();
        var lrs = File.ReadAllLines(Path.Combine(t["run"], "train.log")).Where(l => l.Contains(" it ")).Select(l =>
            double.Parse(System.Text.RegularExpressions.Regex.Match(l, @" lr (\S+) ").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(8, lrs.Length);
        Assert.Equal(0.01, lrs[0], 6); Assert.Equal(0.01, lrs[4], 6); // iteration 4 starts stage 2 at the base rate again
        Assert.True(lrs[3] < 0.002 && lrs[7] < 0.002);
    }

    [Fact]
    public void PhantomRoundTripsThroughTheLaLayout()
    {
        using var t = new TempDir();
        AtriumPhantom.WriteLa(t["la"], train: 3, test: 1, depth: 16, size: 32);
        var split = LeftAtriumDataset.Load(t["la"], labeled: 2);
        Assert.Equal(2, split.Labeled.Count); Assert.Single(split.Unlabeled); Assert.Single(split.Test);
        var read = split.Reader(split.Labeled[1]);
        var made = AtriumPhantom.Generate("LA_phantom_001", 11 * 1000 + 1, 16, 32);
        Assert.Equal((16, 32, 32), (read.Depth, read.Height, read.Width));
        Assert.Equal(made.Image, read.Image);
        Assert.Equal(made.Label, read.Label);
        // an atrium and distractors of the same brightness: a threshold alone cannot separate them
        int fg = made.Label!.Count(v => v == 1);
        Assert.InRange(fg, 200, made.Label.Length / 3);
        double meanFg = made.Image.Where((v, i) => made.Label[i] == 1).Average();
        Assert.True(made.Image.Where((v, i) => made.Label[i] == 0 && v > meanFg).Count() > fg / 20, "expected bright unlabeled distractors");
    }

    [Fact]
    public void TrainsVNetOnVolumesWithValidationAndWritesA3DCheckpoint()
    {
        using var t = new TempDir();
        AtriumPhantom.WriteLa(t["la"], train: 4, test: 1, depth: 16, size: 32);
        var la = LeftAtriumDataset.Load(t["la"], labeled: 2);
        // validation on the test case, to exercise the sliding-window validation path (the LA protocol itself has none)
        var split = la with { Val = la.Test };
        // in channels_last_3d, the layout 3D training runs in by default (the other tests keep NCDHW)
        var r = new Trainer(Options(t["run"], "mean-teacher", 4) with { ChannelsLast = true }, split).Run();
        Assert.Equal(4, r.Iterations);
        Assert.True(double.IsFinite(r.BestDice) && r.BestDice >= 0);
        var (net, meta) = CheckpointFile.LoadAnyNetwork(r.BestCheckpoint);
        using (net)
        {
            Assert.IsType<VNet>(net);
            Assert.Equal((16, 32, 32), (meta.PatchDepth, meta.PatchHeight, meta.PatchWidth));
            Assert.Equal("mean-teacher", meta.Method);
        }
        Assert.True(File.Exists(Path.Combine(t["run"], "validation.csv")));
        var log = File.ReadAllText(Path.Combine(t["run"], "train.log"));
        Assert.Contains("batch 1+1", log);
        // the 2D loader refuses a 3D checkpoint with a clear message
        var e = Assert.Throws<InvalidDataException>(() => CheckpointFile.LoadNetwork(r.BestCheckpoint));
        Assert.Contains("3D network", e.Message);
    }

    [Fact]
    public void TrainsA3DUNetOnOwnNiftiVolumesPaddingTheShallowStack()
    {
        using var t = new TempDir();
        // 8-slice NIfTI volumes: shallower than the 16-slice patch, so the crop pads them (UA-MT's padding)
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 2, val: 1, test: 0, depth: 8, size: 32);
        var split = VolumeSplit.FromManifest(CustomDataset.Load(t["data"], 4));
        Assert.Equal((2, 2, 1), (split.Labeled.Count, split.Unlabeled.Count, split.Val.Count));
        var o = Options(t["run"], "mn", 2) with { Network = new UNetConfig { NumClasses = 4 }, Network3D = new Net3DConfig { Kind = Net3DKind.Unet3d, Filters = 8 }, ValidateEvery = 2 };
        var r = new Trainer(o, split).Run();
        Assert.True(double.IsFinite(r.BestDice));
        var (net, meta) = CheckpointFile.LoadAnyNetwork(r.BestCheckpoint);
        using (net) Assert.IsType<UNet3D>(net);
        Assert.Equal(Net3DKind.Unet3d, meta.Network3D!.Kind);
        Assert.Equal(4, meta.Network.NumClasses);
    }

    [Fact]
    public void InterruptedVolumeRunResumesToTheSameWeights()
    {
        using var t = new TempDir();
        AtriumPhantom.WriteLa(t["la"], train: 4, test: 1, depth: 16, size: 32);
        var split = LeftAtriumDataset.Load(t["la"], labeled: 2);
        // CPS: two stateful networks, no dropout, no noise; batches and crops are functions of the iteration
        torch.manual_seed(0);
        new Trainer(Options(t["straight"], "cps", 4, dropout: false) with { ChannelsLast = true }, split).Run();
        using (var cts = new CancellationTokenSource())
        {
            var o = Options(t["resumed"], "cps", 4, dropout: false) with { ChannelsLast = true };
            new Trainer(o, split, new Resume.StopAfter(2, cts)).Run(cts.Token);
            Assert.Equal(2, CheckpointFile.ReadMeta(Path.Combine(t["resumed"], "last.ckpt"), out _).Iteration);
            new Trainer(o with { Resume = true }, split).Run();
        }
        Resume.AssertSameWeights(Path.Combine(t["straight"], "last.ckpt"), Path.Combine(t["resumed"], "last.ckpt"));
    }

    [Fact]
    public void StepScheduleAndPatchDepthChecks()
    {
        var o = new TrainOptions { BaseLr = 0.01, MaxIterations = 6000, Schedule = LrSchedule.Step, StepSize = 2500 };
        Assert.Equal(0.01, o.LearningRateAt(2499), 12);
        Assert.Equal(0.001, o.LearningRateAt(2500), 12);
        Assert.Equal(0.0001, o.LearningRateAt(5999), 12);
        var bad = new TrainOptions { Network3D = new Net3DConfig(), PatchDepth = 40, PatchHeight = 112, PatchWidth = 112 };
        Assert.Contains("multiple of 16", Assert.Throws<ArgumentException>(() => bad.Validate()).Message);
    }

    [Fact]
    public void MemoryLinesParseAboveTenGigabytes()
    {
        Assert.Equal(15450552, Benchmark.StatusKiB("VmHWM:\t15450552 kB"));
        Assert.Equal(8889400, Benchmark.StatusKiB("VmHWM:\t 8889400 kB"));
        Assert.True(Benchmark.PeakRssMiB() > 1);
    }
}
