using SemiSeg.Runtime;
using SemiSeg.Inference;
using SemiSeg.Data;
using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Training;

/// <summary>Non-finite numbers never reach a checkpoint: every iteration is checked before its optimizer step, checkpoints
/// are not written from non-finite weights, and non-finite checkpoints and options are refused.</summary>
public class NumericGuardTests
{
    [Fact]
    public void ADivergingRunStopsWithOneMessageAndNoNonFiniteCheckpoint()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 0, val: 1, test: 0, depth: 3, size: 32);
        var data = CustomDataset.Load(t["data"], 4);
        torch.manual_seed(0);
        // lr 1e6 with a validation and both checkpoints written after every iteration: before the guard the loss went
        // NaN within 15 iterations while best.ckpt and last.ckpt were written from NaN weights, on iterations that were
        // never logged
        var o = new TrainOptions
        {
            OutputDir = t["run"], MaxIterations = 40, PatchHeight = 32, PatchWidth = 32, BatchSize = 4, LabeledBatchSize = 4,
            ValidateEvery = 1, SaveEvery = 1, LogEvery = 1000, BaseLr = 1e6, Threads = 1,
        };
        var e = Assert.Throws<TrainingDivergedException>(() => new Trainer(o, data).Run());
        Assert.Contains("training diverged", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        foreach (var f in new[] { "best.ckpt", "last.ckpt" })
        {
            var path = Path.Combine(t["run"], f);
            if (!File.Exists(path)) continue;
            var (net, _) = CheckpointFile.LoadNetwork(path); // refuses non-finite weights
            net.Dispose();
        }
    }

    [Fact]
    public void ANonFiniteGradientIsCaughtOnAnUnloggedIteration()
    {
        using var net = new UNet2D(new UNetConfig { Dropout = new double[5] });
        using var x = randn(2, 1, 32, 32);
        var loss = net.forward(x).mean();
        loss.backward();
        NumericGuard.EnsureFiniteStep(loss, net.parameters(), 7); // finite: passes
        net.parameters().Last().grad![0] = float.PositiveInfinity;
        var e = Assert.Throws<TrainingDivergedException>(() => NumericGuard.EnsureFiniteStep(loss, net.parameters(), 7));
        Assert.Contains("iteration 8", e.Message);
        Assert.Throws<TrainingDivergedException>(() => NumericGuard.EnsureFiniteStep(tensor(float.NaN), net.parameters(), 7));
        // a NaN (not only an infinity) in any gradient, also in a large one among finite values, and −∞
        foreach (var bad in new[] { float.NaN, float.NegativeInfinity })
        {
            net.parameters().Last().grad![0] = 0f;
            var big = net.parameters().OrderByDescending(p => p.numel()).First().grad!;
            big.view(-1)[12345] = bad;
            Assert.Throws<TrainingDivergedException>(() => NumericGuard.EnsureFiniteStep(loss, net.parameters(), 7));
            big.view(-1)[12345] = 0f;
        }
        NumericGuard.EnsureFiniteStep(loss, net.parameters(), 7); // finite again: passes
        // finite gradients whose sum overflows float are not a divergence: the exact check decides
        var flat = net.parameters().OrderByDescending(p => p.numel()).First().grad!.view(-1);
        flat[1] = 3e38f; flat[2] = 3e38f;
        NumericGuard.EnsureFiniteStep(loss, net.parameters(), 7);
    }

    [Fact]
    public void ACheckpointWithNonFiniteWeightsIsRefusedByName()
    {
        using var t = new TempDir();
        using var m = new SupervisedMethod(new UNetConfig());
        using (no_grad()) m.Network.OutputConv.bias!.fill_(12345.678f);
        Checkpoint.Save(t["ok.ckpt"], new CheckpointMeta { Network = m.Network.Config, PatchHeight = 32, PatchWidth = 32 }, m, null);
        // a diverged run's file: the output bias's bytes replaced by NaN
        var bytes = File.ReadAllBytes(t["ok.ckpt"]);
        var marker = BitConverter.GetBytes(12345.678f);
        int at = -1;
        for (int i = 0; i + 16 <= bytes.Length && at < 0; i++)
            if (Enumerable.Range(0, 16).All(k => bytes[i + k] == marker[k % 4])) at = i;
        Assert.True(at >= 0, "marker not found");
        for (int k = 0; k < 16; k += 4) BitConverter.GetBytes(float.NaN).CopyTo(bytes, at + k);
        // re-seal the SHA-256 trailer, as a diverged run's own (intact) file would carry it
        System.Security.Cryptography.SHA256.HashData(bytes.AsSpan(0, bytes.Length - 40)).CopyTo(bytes, bytes.Length - 32);
        File.WriteAllBytes(t["nan.ckpt"], bytes);
        var e = Assert.Throws<InvalidDataException>(() => CheckpointFile.LoadNetwork(t["nan.ckpt"]));
        Assert.Contains("nan.ckpt", e.Message);
        Assert.Contains("outConv.bias", e.Message);
        // and one is never written from such weights
        using (no_grad()) m.Network.OutputConv.bias![0] = float.NaN;
        Assert.Throws<TrainingDivergedException>(() => Checkpoint.Save(t["new.ckpt"], new CheckpointMeta { Network = m.Network.Config, PatchHeight = 32, PatchWidth = 32 }, m, null));
        Assert.False(File.Exists(t["new.ckpt"]));
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(-0.01)]
    public void NonFiniteOrNegativeLearningRatesAreRefused(double lr)
    {
        var e = Assert.Throws<ArgumentException>(() => new TrainOptions { BaseLr = lr }.Validate());
        Assert.Contains("learning rate", e.Message);
        Assert.Throws<ArgumentException>(() => new TrainOptions { WeightDecay = double.NaN }.Validate());
        Assert.Throws<ArgumentException>(() => new MethodSettings(new Dictionary<string, string> { ["w"] = "NaN" }).Double("w", 1));
    }
}
