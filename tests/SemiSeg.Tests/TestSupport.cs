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
    public static string? AcdcRoot()
    {
        var env = Environment.GetEnvironmentVariable("SEMISEG_ACDC");
        if (!string.IsNullOrEmpty(env) && File.Exists(System.IO.Path.Combine(env, "train_slices.list"))) return env;
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "data", "acdc");
            if (File.Exists(System.IO.Path.Combine(candidate, "train_slices.list"))) return candidate;
            dir = dir.Parent;
        }
        return null;
    }

    public const string MissingMessage = "real ACDC data not found at ../shared/data/acdc (or $SEMISEG_ACDC): test skipped";
}
