using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Models;

/// <summary>
/// channels_last (NHWC) layout for 4-D activations and convolution weights, which lets libtorch's oneDNN kernels run
/// convolutions, batch norm, pooling and bilinear upsampling without reordering. TorchSharp 0.107 exposes no
/// memory_format argument, so the layout is made from strides: permute to NHWC, make contiguous, permute back — the
/// logical shape stays (N, C, H, W), exactly as torch.channels_last does. Values are unchanged; only the memory order
/// differs, and libtorch keeps the layout through the network once input and weights carry it.
/// </summary>
public static class MemoryLayout
{
    /// <summary>PyTorch's is_contiguous(memory_format=channels_last): strides dense in the order C, W, H, N, with
    /// dimensions of size 1 free to have any stride.</summary>
    public static bool IsChannelsLast(Tensor t)
    {
        if (t.dim() != 4) return false;
        var s = t.stride(); var n = t.shape;
        long expected = 1;
        foreach (int d in new[] { 1, 3, 2, 0 })
        {
            if (n[d] == 1) continue;
            if (s[d] != expected) return false;
            expected *= n[d];
        }
        return true;
    }

    /// <summary>The same values in channels_last memory order (a new tensor unless already so).</summary>
    public static Tensor ToChannelsLast(Tensor t) =>
        t.dim() != 4 || IsChannelsLast(t) ? t.alias() : t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    /// <summary>Converts every 4-D parameter and buffer of the module to channels_last, in place.</summary>
    public static void ToChannelsLast(nn.Module module)
    {
        using var noGrad = no_grad();
        foreach (var p in module.parameters())
            if (p.dim() == 4 && !IsChannelsLast(p))
                using (var cl = p.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)) p.set_(cl);
    }
}
