using System.Runtime.InteropServices;
using TorchSharp;

namespace SemiSeg.Runtime;

/// <summary>Process-wide engine settings: thread count (default: the core count), the C allocator, and seeds.</summary>
public static class TorchRuntime
{
    static int _configured;

    public static void Configure(int? threads = null)
    {
        int n = threads is > 0 ? threads.Value : Environment.ProcessorCount;
        if (Interlocked.Exchange(ref _configured, 1) == 0)
        {
            KeepFreedMemory();
            NnpackWarning.Apply();
            try { torch.set_num_interop_threads(1); } catch { /* can only be set once, before parallel work */ }
        }
        torch.set_num_threads(n);
    }

    public static void Seed(long seed) => torch.manual_seed(seed);

    /// <summary>The state of torch's default CPU generator (dropout masks, noise, random permutations drawn on the
    /// host), base64-encoded: what a resumable checkpoint stores so that a resumed run draws what an uninterrupted one
    /// would have drawn.</summary>
    public static string RandomState()
    {
        using var gen = torch.Generator.Default;
        using var state = gen.get_state();
        return Convert.ToBase64String(state.data<byte>().ToArray());
    }

    /// <summary>Puts torch's default CPU generator back to a state from <see cref="RandomState"/>.</summary>
    public static void SetRandomState(string state)
    {
        byte[] bytes;
        try { bytes = Convert.FromBase64String(state); }
        catch (FormatException e) { throw new InvalidDataException("the random-generator state is not base64", e); }
        using var gen = torch.Generator.Default;
        // TorchSharp's set_state does not catch libtorch's size check: a state of another size would abort the process
        using (var current = gen.get_state())
            if (current.numel() != bytes.Length)
                throw new InvalidDataException($"the random-generator state has {bytes.Length} bytes; this libtorch's CPU generator has {current.numel()}");
        using var t = torch.tensor(bytes, dtype: torch.ScalarType.Byte);
        gen.set_state(t);
    }

    /// <summary>
    /// Whether libtorch runs dense CPU convolutions on oneDNN (the default, and PyTorch's
    /// <c>torch.backends.mkldnn.enabled</c>); off, they run on libtorch's reference kernels (im2col + GEMM), which are
    /// slower. TorchSharp does not expose the switch, so it is reached through libtorch's C++ context
    /// (<c>at::globalContext().setUserEnabledMkldnn</c>); null where this libtorch build does not export it.
    /// </summary>
    public static bool? OneDnn
    {
        get => LibTorchContext.Get("_ZNK2at7Context17userEnabledMkldnnEv");
        set
        {
            if (value is bool on && !LibTorchContext.Set("_ZN2at7Context20setUserEnabledMkldnnEb", on))
                throw new PlatformNotSupportedException("this libtorch does not export at::Context::setUserEnabledMkldnn");
        }
    }

    /// <summary>Whether <see cref="KeepFreedMemory"/> changed the allocator in this process.</summary>
    public static bool AllocatorTuned { get; private set; }

    /// <summary>Whether jemalloc serves this process's allocations (./semiseg preloads it where the system has it).</summary>
    public static bool Jemalloc { get; } = OperatingSystem.IsLinux() && ReadMaps().Contains("libjemalloc", StringComparison.Ordinal);

    /// <summary>The allocator in one phrase, for the logs and `bench`.</summary>
    public static string AllocatorDescription =>
        Jemalloc ? $"jemalloc (MALLOC_CONF={Environment.GetEnvironmentVariable("MALLOC_CONF") ?? "its defaults"})"
        : AllocatorTuned ? "one glibc heap, freed blocks kept mapped (SEMISEG_MALLOC_TUNING=0 for the default)" : "glibc's default";

    static string ReadMaps()
    {
        try { return File.ReadAllText("/proc/self/maps"); }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    static extern int MallocTrim(nuint pad);

    /// <summary>Returns the C heap's free memory to the system (glibc's malloc_trim), e.g. after a start-up check whose
    /// buffers the tuned allocator would otherwise keep resident for the whole run. Linux/glibc only.</summary>
    public static void ReleaseFreeMemory()
    {
        if (!OperatingSystem.IsLinux()) return;
        try { MallocTrim(0); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { /* not glibc */ }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int Mallopt(int param, int value);
    const int M_TRIM_THRESHOLD = -1, M_MMAP_MAX = -4, M_ARENA_MAX = -8;

    /// <summary>
    /// libtorch's CPU tensors come from glibc malloc. Blocks above the mmap threshold (32 MiB at most, and a 256x256
    /// batch-24 activation is 100 MiB) are mmapped on every allocation and unmapped on every free, so each training
    /// iteration faults in and the kernel zeroes its whole working set again: ~12-15% of a Mean-Teacher iteration in
    /// clear_page/page-fault time under `perf`. Serving every block from one heap (no mmap, one arena) that is not
    /// trimmed lets the freed blocks be reused, already mapped. Values are unchanged (allocation only); resident
    /// memory stays at the run's peak instead of breathing. Linux/glibc only; SEMISEG_MALLOC_TUNING=0 turns it off.
    /// </summary>
    public static void KeepFreedMemory()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("SEMISEG_MALLOC_TUNING") == "0") return;
        if (Jemalloc) return; // preloaded by ./semiseg: it keeps freed extents itself (MALLOC_CONF), mallopt is glibc's
        try
        {
            bool ok = Mallopt(M_MMAP_MAX, 0) == 1;
            ok &= Mallopt(M_TRIM_THRESHOLD, int.MaxValue) == 1;
            ok &= Mallopt(M_ARENA_MAX, 1) == 1;
            AllocatorTuned = ok;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { /* not glibc */ }
    }
}
