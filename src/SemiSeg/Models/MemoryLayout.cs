using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Models;

/// <summary>
/// channels_last (NHWC) layout for 4-D activations and convolution weights and channels_last_3d (NDHWC) for 5-D ones,
/// which lets libtorch's oneDNN kernels run convolutions, batch norm, pooling and upsampling without reordering.
/// TorchSharp 0.107 exposes no memory_format argument, so the layout is made from strides: permute channels last,
/// make contiguous, permute back — the logical shape stays (N, C, [D,] H, W), exactly as torch.channels_last(_3d)
/// does. Values are unchanged; only the memory order differs, and libtorch keeps the layout through the network once
/// input and weights carry it.
/// </summary>
public static class MemoryLayout
{
    /// <summary>PyTorch's is_contiguous(memory_format=channels_last) for 4-D and channels_last_3d for 5-D tensors:
    /// strides dense in the order C, W, H, (D,) N, with dimensions of size 1 free to have any stride.</summary>
    public static bool IsChannelsLast(Tensor t)
    {
        int[] order = t.dim() switch { 4 => new[] { 1, 3, 2, 0 }, 5 => new[] { 1, 4, 3, 2, 0 }, _ => Array.Empty<int>() };
        if (order.Length == 0) return false;
        var s = t.stride(); var n = t.shape;
        long expected = 1;
        foreach (int d in order)
        {
            if (n[d] == 1) continue;
            if (s[d] != expected) return false;
            expected *= n[d];
        }
        return true;
    }

    /// <summary>The same values in channels_last(_3d) memory order (a new tensor unless already so; other ranks are
    /// returned as they are).</summary>
    public static Tensor ToChannelsLast(Tensor t) => t.dim() switch
    {
        _ when IsChannelsLast(t) => t.alias(),
        4 => t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
        5 => t.permute(0, 2, 3, 4, 1).contiguous().permute(0, 4, 1, 2, 3),
        _ => t.alias(),
    };

    /// <summary>Converts every 4-D and 5-D parameter and buffer of the module to channels_last(_3d), in place.</summary>
    public static void ToChannelsLast(nn.Module module)
    {
        using var noGrad = no_grad();
        foreach (var p in module.parameters())
            if (p.dim() is 4 or 5 && !IsChannelsLast(p))
                using (var cl = ToChannelsLast(p)) p.set_(cl);
    }
}
