using SemiSeg.Runtime;

// Torch already uses every core; running test classes in parallel would only contend (and Console capture in the
// CLI tests must not interleave).
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace SemiSeg.Tests;

/// <summary>The test process trains with the kernels the start-up self-check chooses, as `semiseg train` does: on a
/// CPU whose oneDNN convolution backward races (issue 15) the suite then runs on kernels that agree with float64
/// instead of failing at random.</summary>
static class KernelSetup
{
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void Run()
    {
        TorchRuntime.Configure();
        Console.WriteLine(SemiSeg.Training.KernelSelfCheck.Ensure(volume: false));
        Console.WriteLine(SemiSeg.Training.KernelSelfCheck.Ensure(volume: true));
    }
}

/// <summary>A temporary folder removed at the end of a test.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "semiseg-test-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Path);
        TorchRuntime.Configure();
    }
    public string Path { get; }
    public string this[string name] => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}

public static class SharedData
{
    /// <summary>../shared/data/acdc, found by walking up from the test binary (the project root has ../shared beside it).</summary>
    public static string? AcdcRoot() => Find("SEMISEG_ACDC", "acdc", "train_slices.list");

    public const string MissingMessage = "real ACDC data not found at ../shared/data/acdc (or $SEMISEG_ACDC): test skipped";

    /// <summary>../shared/data/hc18-subset (HC18 in the official layout), or $SEMISEG_HC18.</summary>
    public static string? Hc18Root() => Find("SEMISEG_HC18", "hc18-subset", "training_set_pixel_size_and_HC.csv");

    /// <summary>../shared/data/psfh-subset (PSFHS as released), or $SEMISEG_PSFH.</summary>
    public static string? PsfhRoot() => Find("SEMISEG_PSFH", "psfh-subset", "label_mha");

    public const string Hc18MissingMessage = "real HC18 data not found at ../shared/data/hc18-subset (or $SEMISEG_HC18): test skipped";
    public const string PsfhMissingMessage = "real PSFHS data not found at ../shared/data/psfh-subset (or $SEMISEG_PSFH): test skipped";

    /// <summary>A data set folder holding <paramref name="marker"/> (a file or folder): the environment variable's
    /// folder, else shared/data/<paramref name="folder"/> beside an ancestor of the test binary.</summary>
    static string? Find(string variable, string folder, string marker)
    {
        static bool Has(string root, string marker) => File.Exists(System.IO.Path.Combine(root, marker)) || Directory.Exists(System.IO.Path.Combine(root, marker));
        var env = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrEmpty(env) && Has(env, marker)) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "data", folder);
            if (Has(candidate, marker)) return candidate;
        }
        return null;
    }
}

/// <summary>The fidelity fixtures (Fixtures/fidelity/*.json): inputs and expected values our Python transcriptions of
/// the references' code wrote with python3-torch.</summary>
public static class FidelityFixture
{
    public static System.Text.Json.JsonElement Load(string name) =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures", "fidelity", name))).RootElement;
}

/// <summary>Interrupting and resuming trainings: a monitor that cancels after an iteration, and the check that a resumed
/// run ended with the uninterrupted run's weights.</summary>
public static class Resume
{
    /// <summary>Cancels <paramref name="cts"/> once iteration <paramref name="n"/> has finished.</summary>
    public sealed class StopAfter : SemiSeg.Training.ITrainingMonitor
    {
        readonly long _n; readonly CancellationTokenSource _cts;
        public StopAfter(long n, CancellationTokenSource cts) { _n = n; _cts = cts; }
        public void OnIteration(SemiSeg.Training.IterationInfo info) { if (info.Iteration >= _n) _cts.Cancel(); }
    }

    /// <summary>The inference networks of two checkpoints (2D or 3D) hold the same weights, up to summation order
    /// (rtol 1e-4, atol 1e-5 in float64); a failure names the first parameter that differs.</summary>
    public static void AssertSameWeights(string straight, string resumed)
    {
        var (a, _) = SemiSeg.Inference.CheckpointFile.LoadAnyNetwork(straight);
        var (b, _) = SemiSeg.Inference.CheckpointFile.LoadAnyNetwork(resumed);
        using (a) using (b)
        {
            var pb = b.state_dict();
            foreach (var (k, v) in a.state_dict())
                Assert.True(v.to_type(TorchSharp.torch.ScalarType.Float64).allclose(pb[k].to_type(TorchSharp.torch.ScalarType.Float64), rtol: 1e-4, atol: 1e-5), $"{k} differs after resume");
        }
    }
}
