using SemiSeg.Geometry;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods;

/// <summary>Turning predictions into training targets: sharpening, confidence masks, largest connected component.</summary>
public static class PseudoLabels
{
    /// <summary>Temperature sharpening p^(1/T) / Σ p^(1/T) over the class dimension (MC-Net, C3S3: T = 0.1).</summary>
    public static Tensor Sharpen(Tensor probs, double temperature)
    {
        using var scope = NewDisposeScope();
        var p = probs.pow(1.0 / temperature);
        return (p / p.sum(1, keepdim: true)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// FixMatch/UniMatch-style hard pseudo-labels: argmax where the top probability reaches <paramref name="threshold"/>,
    /// <paramref name="ignoreIndex"/> elsewhere — low-confidence pixels are ignored, never turned into background
    /// (the SSL4MIS FixMatch script's bug). Also returns the (B, H, W) float confidence mask.
    /// </summary>
    public static (Tensor labels, Tensor mask) Confident(Tensor probs, double threshold, long ignoreIndex = 255)
    {
        using var scope = NewDisposeScope();
        var (conf, arg) = probs.max(1);
        var keep = conf.ge(threshold);
        var labels = arg.masked_fill(keep.logical_not(), ignoreIndex);
        return (labels.MoveToOuterDisposeScope(), keep.to_type(probs.dtype).MoveToOuterDisposeScope());
    }

    /// <summary><see cref="ConnectedComponents.LargestComponent"/> on a (N, H, W) integer tensor, slice by slice.</summary>
    public static Tensor LargestComponentPerSlice(Tensor labels, int numClasses)
    {
        long n = labels.shape[0], h = labels.shape[1], w = labels.shape[2];
        using var asBytes = labels.to_type(ScalarType.Byte).contiguous();
        var kept = ConnectedComponents.LargestComponent(asBytes.cpu().data<byte>().ToArray(), (int)n, (int)h, (int)w, numClasses, perSlice: true);
        return tensor(kept, new[] { n, h, w }, device: labels.device).to_type(labels.dtype);
    }

    /// <summary>Each foreground class's largest 3D connected component (26-connectivity) in every volume of a
    /// (N, D, H, W) integer tensor: the LA lineage's getLargestCC on pseudo-labels.</summary>
    public static Tensor LargestComponentPerVolume(Tensor labels, int numClasses)
    {
        long n = labels.shape[0], d = labels.shape[1], h = labels.shape[2], w = labels.shape[3], size = d * h * w;
        using var asBytes = labels.to_type(ScalarType.Byte).contiguous();
        var all = asBytes.cpu().data<byte>().ToArray();
        var kept = new byte[all.Length];
        for (long i = 0; i < n; i++)
        {
            var one = ConnectedComponents.LargestComponent(all.AsSpan((int)(i * size), (int)size).ToArray(), (int)d, (int)h, (int)w, numClasses, perSlice: false);
            Array.Copy(one, 0, kept, i * size, size);
        }
        return tensor(kept, new[] { n, d, h, w }, device: labels.device).to_type(labels.dtype);
    }
}
