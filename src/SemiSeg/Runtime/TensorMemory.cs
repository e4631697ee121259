using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Runtime;

/// <summary>
/// A CPU tensor's own memory, for the few loops that read or write it in place (the dropout masks, ACTION's fused
/// contrast term): TorchSharp's <c>data&lt;T&gt;().ToArray()</c> copies at about 5 ns per value.
/// </summary>
public static class TensorMemory
{
    [DllImport("LibTorchSharp")]
    static extern IntPtr THSTensor_data(IntPtr handle);

    /// <summary>The address of the tensor's first element (its storage offset applied).</summary>
    public static IntPtr Address(Tensor t) => THSTensor_data(t.Handle);

    /// <summary>The values of a contiguous float32 CPU tensor, in place; a clear error for anything else. The span
    /// is valid while the tensor lives.</summary>
    public static unsafe Span<float> Floats(Tensor t)
    {
        if (t.device_type != DeviceType.CPU || t.dtype != ScalarType.Float32 || !t.is_contiguous() || t.numel() > int.MaxValue)
            throw new InvalidOperationException($"in-place access needs a contiguous float32 CPU tensor of fewer than 2^31 values, got {t.dtype} {string.Join("x", t.shape)} on {t.device}");
        var address = Address(t);
        if (address == IntPtr.Zero && t.numel() > 0) throw new InvalidOperationException($"tensor {string.Join("x", t.shape)} on {t.device} has no memory");
        return new Span<float>((void*)address, (int)t.numel());
    }
}
