using System.Runtime.InteropServices;

namespace SemiSeg.Runtime;

/// <summary>
/// Switches of libtorch's global <c>at::Context</c> that PyTorch exposes as <c>torch.backends.*</c> and TorchSharp
/// does not (oneDNN, NNPACK), reached through libtorch_cpu's exported C++ entry points (Itanium names, Linux and macOS).
/// Every member answers null / false where the library or a symbol cannot be found, instead of failing.
/// </summary>
public static unsafe class LibTorchContext
{
    static readonly object Sync = new();
    static IntPtr _lib;
    static bool _tried;

    /// <summary>The address of an exported libtorch_cpu symbol.</summary>
    public static bool TryGetExport(string symbol, out IntPtr address)
    {
        address = IntPtr.Zero;
        lock (Sync)
        {
            if (!_tried)
            {
                _tried = true;
                if (!OperatingSystem.IsWindows())
                {
                    var name = OperatingSystem.IsMacOS() ? "libtorch_cpu.dylib" : "libtorch_cpu.so";
                    TorchSharp.torch.get_num_threads(); // makes sure TorchSharp has loaded libtorch
                    if (!NativeLibrary.TryLoad(name, typeof(TorchSharp.torch).Assembly, null, out _lib)) NativeLibrary.TryLoad(name, out _lib);
                }
            }
            return _lib != IntPtr.Zero && NativeLibrary.TryGetExport(_lib, symbol, out address);
        }
    }

    static IntPtr Context() => TryGetExport("_ZN2at13globalContextEv", out var f) ? ((delegate* unmanaged<IntPtr>)f)() : IntPtr.Zero;

    /// <summary>Reads a boolean switch through its const getter, e.g. <c>_ZNK2at7Context17userEnabledMkldnnEv</c>.</summary>
    public static bool? Get(string getter)
    {
        var ctx = Context();
        return ctx != IntPtr.Zero && TryGetExport(getter, out var f) ? ((delegate* unmanaged<IntPtr, byte>)f)(ctx) != 0 : null;
    }

    /// <summary>Sets a boolean switch through its setter, e.g. <c>_ZN2at7Context20setUserEnabledMkldnnEb</c>; false
    /// where it cannot be reached.</summary>
    public static bool Set(string setter, bool on)
    {
        var ctx = Context();
        if (ctx == IntPtr.Zero || !TryGetExport(setter, out var f)) return false;
        ((delegate* unmanaged<IntPtr, byte, void>)f)(ctx, on ? (byte)1 : (byte)0);
        return true;
    }
}
