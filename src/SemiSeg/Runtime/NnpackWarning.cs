using System.Runtime.InteropServices;

namespace SemiSeg.Runtime;

/// <summary>
/// libtorch logs "Could not initialize NNPACK! Reason: Unsupported hardware." on every NNPACK availability check
/// when NNPACK cannot start on the CPU (some virtual machines): 8 lines per training iteration, burying real errors.
/// PyTorch's own switch for this is torch.backends.nnpack (at::Context::setUserEnabledNNPACK), which TorchSharp does
/// not expose; this asks libtorch once, with stderr muted for that one call, and switches NNPACK off only where it is
/// unavailable anyway, so no convolution changes kernel where NNPACK works.
/// </summary>
public static unsafe class NnpackWarning
{
    [DllImport("libc", SetLastError = true)] static extern int dup(int fd);
    [DllImport("libc", SetLastError = true)] static extern int dup2(int from, int to);
    [DllImport("libc", SetLastError = true)] static extern int close(int fd);
    [DllImport("libc", SetLastError = true, EntryPoint = "open")] static extern int Open(string path, int flags);

    static int _done;

    /// <summary>Whether NNPACK is available (true), was unavailable and is now switched off (false), or whether
    /// libtorch's symbols could not be found (null: nothing changed, e.g. not Linux).</summary>
    public static bool? Available { get; private set; }

    /// <summary>Runs once per process (later calls return the first answer).</summary>
    public static bool? Apply()
    {
        if (Interlocked.Exchange(ref _done, 1) != 0) return Available;
        if (!LibTorchContext.TryGetExport("_ZN2at6native17_nnpack_availableEv", out var avail)) return Available = null;
        bool ok;
        int saved = dup(2), devNull = Open("/dev/null", 1 /* O_WRONLY */);
        if (saved >= 0 && devNull >= 0) dup2(devNull, 2);
        try { ok = ((delegate* unmanaged<byte>)avail)() != 0; }
        finally
        {
            if (saved >= 0 && devNull >= 0) dup2(saved, 2);
            if (saved >= 0) close(saved);
            if (devNull >= 0) close(devNull);
        }
        if (!ok && !LibTorchContext.Set(SetEnabled, false)) return Available = null;
        return Available = ok;
    }

    const string SetEnabled = "_ZN2at7Context20setUserEnabledNNPACKEb";

    /// <summary>libtorch's NNPACK switch (torch.backends.nnpack.enabled); null where it cannot be reached.</summary>
    public static bool? UserEnabled
    {
        get => LibTorchContext.Get("_ZNK2at7Context17userEnabledNNPACKEv");
        set { if (value is bool v) LibTorchContext.Set(SetEnabled, v); }
    }
}
