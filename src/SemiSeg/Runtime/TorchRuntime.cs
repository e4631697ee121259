using TorchSharp;

namespace SemiSeg.Runtime;

/// <summary>Process-wide engine settings: thread count (default: the core count) and seeds.</summary>
public static class TorchRuntime
{
    static int _configured;

    public static void Configure(int? threads = null)
    {
        int n = threads is > 0 ? threads.Value : Environment.ProcessorCount;
        if (Interlocked.Exchange(ref _configured, 1) == 0)
        {
            try { torch.set_num_interop_threads(1); } catch { /* can only be set once, before parallel work */ }
        }
        torch.set_num_threads(n);
    }

    public static void Seed(long seed) => torch.manual_seed(seed);
}
