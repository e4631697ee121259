using SemiSeg.Inference;
using SemiSeg.Data;
using SemiSeg.Training;
using TorchSharp;
using Xunit.Abstractions;

namespace SemiSeg.Tests.Training;

/// <summary>
/// Many short trainings, at 1 and 2 threads, while two threads allocate and force collections throughout, so that
/// finalizers would run in the middle of native calls if anything let them: before the finalizer gate, 5 of 10 short
/// `--threads 1` runs died with a native stack trace ("argument alpha must not be a floating point number") from a
/// TorchSharp Scalar freed under libtorch. Each run must finish with finite checkpoints; a crash ends the test host.
/// </summary>
public class NativeLifetimeStressTests
{
    readonly ITestOutputHelper _out;
    public NativeLifetimeStressTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void ShortTrainingsUnderForcedCollectionsNeverCrash()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 2, val: 1, test: 0, depth: 3, size: 32);
        var data = CustomDataset.Load(t["data"], 4);
        int before = torch.get_num_threads();
        using var stop = new CancellationTokenSource();
        long collections = 0;
        var hammers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                for (int k = 0; k < 8; k++) { var a = new float[100_000]; a[k] = k; }
                GC.Collect(0); Interlocked.Increment(ref collections);
                Thread.Sleep(1); // a collection every millisecond or so, not a machine-wide stall
            }
        })).ToArray();
        int runs = 0;
        try
        {
            foreach (int threads in new[] { 1, 2 })
                foreach (var method in new[] { "supervised", "mean-teacher", "cps" })
                {
                    var o = new TrainOptions
                    {
                        Method = method, OutputDir = t[$"run-{method}-{threads}"], MaxIterations = 8, PatchHeight = 32, PatchWidth = 32,
                        BatchSize = 4, LabeledBatchSize = 2, ValidateEvery = 4, SaveEvery = 4, LogEvery = 1, Threads = threads,
                    };
                    var result = new Trainer(o, data).Run();
                    Assert.Equal(8, result.Iterations);
                    using (SemiSeg.Runtime.FinalizerGuard.Enter())
                    {
                        SemiSeg.Runtime.FinalizerGuard.SafePoint(); // the hammers keep collecting: read inside a gated scope
                        var (net, _) = CheckpointFile.LoadNetwork(Path.Combine(o.OutputDir, "last.ckpt")); // finite, readable
                        net.Dispose();
                    }
                    runs++;
                }
        }
        finally
        {
            stop.Cancel(); Task.WaitAll(hammers);
            torch.set_num_threads(before);
        }
        _out.WriteLine($"{runs} trainings (1 and 2 threads), {Interlocked.Read(ref collections)} forced collections, 0 crashes");
        Assert.Equal(6, runs);
    }
}
