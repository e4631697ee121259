using SemiSeg.Data;
using SemiSeg.Inference;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;

namespace SemiSeg.Tests.Training;

/// <summary>Tests that need torch's process-wide CPU generator to themselves: another test drawing from it in
/// parallel would shift their draws. The assembly runs test classes one at a time (TestSupport.cs); this collection
/// keeps these alone also under a runner configured to run collections in parallel.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalGeneratorCollection
{
    public const string Name = "torch's global generator";
}

[Collection(GlobalGeneratorCollection.Name)]
public class ResumeRandomStateTests
{
    /// <summary>
    /// Mean Teacher with the UNet's dropout and the teacher's input noise: every iteration draws from torch's generator.
    /// A run interrupted after 3 iterations and resumed must end with the weights of the uninterrupted 6-iteration run,
    /// so the checkpoint carries the generator's state (before, a resume reseeded from the seed and the iteration, and
    /// the dropout masks after it were other masks; the weights then differ by far more than the tolerance, which only
    /// allows for summation order).
    /// </summary>
    [Fact]
    public void AResumedRunDrawsWhatTheUninterruptedRunDrew()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 2, val: 1, test: 0, depth: 3, size: 32);
        var data = CustomDataset.Load(t["data"], 4);
        TrainOptions Options(string dir) => new()
        {
            Method = "mean-teacher", OutputDir = dir, MaxIterations = 6, PatchHeight = 32, PatchWidth = 32, BatchSize = 4,
            LabeledBatchSize = 2, ValidateEvery = 2, SaveEvery = 3, LogEvery = 1, Threads = 1,
            MethodParams = new() { ["rampup"] = "0", ["consistency_start"] = "0" }, // the teacher's noisy pass from the start
        };
        new Trainer(Options(t["straight"]), data).Run();
        using (var cts = new CancellationTokenSource())
        {
            new Trainer(Options(t["resumed"]), data, new Resume.StopAfter(3, cts)).Run(cts.Token);
            var meta = CheckpointFile.ReadMeta(Path.Combine(t["resumed"], "last.ckpt"), out _);
            Assert.Equal(3, meta.Iteration);
            Assert.NotNull(meta.RandomState);
            new Trainer(Options(t["resumed"]) with { Resume = true }, data).Run();
        }
        Assert.Contains("random-generator state restored", File.ReadAllText(Path.Combine(t["resumed"], "train.log")));
        Resume.AssertSameWeights(Path.Combine(t["straight"], "last.ckpt"), Path.Combine(t["resumed"], "last.ckpt"));
    }

    /// <summary>The generator's state round-trips through its text form; a garbled one and one of the wrong size are
    /// refused.</summary>
    [Fact]
    public void TheGeneratorStateRoundTrips()
    {
        torch.manual_seed(11);
        var state = SemiSeg.Runtime.TorchRuntime.RandomState();
        var first = torch.rand(8);
        SemiSeg.Runtime.TorchRuntime.SetRandomState(state);
        var again = torch.rand(8);
        Assert.True(first.equal(again).all().item<bool>());
        Assert.Contains("base64", Assert.Throws<InvalidDataException>(() => SemiSeg.Runtime.TorchRuntime.SetRandomState("not base64!")).Message);
        // a state of the wrong size is refused before it reaches libtorch, whose uncaught size check would abort the
        // process (the trainer names the checkpoint around the message), and changes nothing
        var before = SemiSeg.Runtime.TorchRuntime.RandomState();
        Assert.Contains("10 bytes", Assert.Throws<InvalidDataException>(() => SemiSeg.Runtime.TorchRuntime.SetRandomState(Convert.ToBase64String(new byte[10]))).Message);
        Assert.Equal(before, SemiSeg.Runtime.TorchRuntime.RandomState());
    }
}
