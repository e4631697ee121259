using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Models;

/// <summary>
/// channels_last (NHWC) layout for 4-D activations and convolution weights and channels_last_3d (NDHWC) for 5-D ones,
/// which lets libtorch's oneDNN kernels run convolutions, batch norm, pooling and upsampling without reordering.
/// TorchSharp 0.107 exposes no memory_format argument, so the layout is made from strides: permute channels last,
/// make contiguous, view it back as (N, C, [D,] H, W) with PyTorch's channels_last(_3d) strides, exactly as
/// torch.channels_last(_3d) does. Values are unchanged; only the memory order differs, and libtorch keeps the layout
/// through the network once input and weights carry it.
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

    /// <summary>The same values in channels_last(_3d) memory order with PyTorch's strides for it (a new tensor unless
    /// already so; other ranks are returned as they are). Dimensions of size 1 get the strides
    /// <c>contiguous(memory_format=torch.channels_last)</c> gives them, not just any: libtorch picks a convolution's
    /// layout from its input's and weight's strides (suggest_memory_format), and reads a single-channel (N, 1, H, W)
    /// tensor with NCHW strides (H·W, H·W, W, 1) as NCHW although its memory order is both. Left so, a network's first
    /// convolution (one input channel, and a weight with one input channel) ran in NCHW and handed an NCHW map of its
    /// widest activation to the rest of the network, reordered by every next layer.</summary>
    public static Tensor ToChannelsLast(Tensor t)
    {
        if (t.dim() is not (4 or 5)) return t.alias();
        if (HasChannelsLastStrides(t)) return t.alias();
        var want = ChannelsLastStrides(t.shape);
        if (IsChannelsLast(t)) return t.as_strided(t.shape, want, t.storage_offset()); // same memory order: restride
        using var dense = t.dim() == 4 ? t.permute(0, 2, 3, 1).contiguous() : t.permute(0, 2, 3, 4, 1).contiguous();
        return dense.as_strided(t.shape, want, dense.storage_offset());
    }

    /// <summary>Exactly the strides <see cref="ToChannelsLast(Tensor)"/> gives (size-1 dimensions included), which
    /// libtorch reads as channels_last(_3d).</summary>
    public static bool HasChannelsLastStrides(Tensor t) => t.dim() is 4 or 5 && t.stride().SequenceEqual(ChannelsLastStrides(t.shape));

    /// <summary>PyTorch's get_channels_last_strides_2d/3d: C innermost, then W, H, (D,) N.</summary>
    public static long[] ChannelsLastStrides(long[] shape)
    {
        var s = new long[shape.Length];
        s[1] = 1;
        long acc = shape[1];
        for (int d = shape.Length - 1; d >= 2; d--) { s[d] = acc; acc *= shape[d]; }
        s[0] = acc;
        return s;
    }

    /// <summary>Converts every 4-D and 5-D parameter and buffer of the module to channels_last(_3d), in place.</summary>
    public static void ToChannelsLast(nn.Module module)
    {
        using var noGrad = no_grad();
        foreach (var p in module.parameters())
            if (p.dim() is 4 or 5 && !HasChannelsLastStrides(p))
                using (var cl = ToChannelsLast(p)) p.set_(cl);
    }
}
