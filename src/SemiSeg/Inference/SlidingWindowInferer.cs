using SemiSeg.Data;
using SemiSeg.Geometry;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Inference;

/// <summary>
/// Sliding-window inference of a 3D network over a (D, H, W) volume, as the LA lineage's test_single_case: the volume
/// is zero-padded (symmetrically) up to the patch where it is smaller, windows start every stride along each axis
/// (the last one flush with the end: ⌈(size − patch)/stride⌉ + 1 windows per axis), softmax scores are summed and
/// divided by the number of windows covering each voxel, and the argmax is cropped back to the volume. UA-MT / BCP
/// test LA with patch 80×112×112 (axis order of this volume: D, H, W) and strides 4 / 18 / 18.
/// </summary>
public sealed class SlidingWindowInferer : IInferer
{
    readonly nn.Module<Tensor, Tensor> _net;
    readonly (int d, int h, int w) _patch, _stride;
    readonly bool _largestComponent, _ownsNetwork;

    /// <param name="stride">null: half the patch (<see cref="HalfPatch"/>).</param>
    public SlidingWindowInferer(nn.Module<Tensor, Tensor> net, int numClasses, (int d, int h, int w) patch, (int d, int h, int w)? stride = null,
        bool largestComponent = false, bool ownsNetwork = false)
    {
        _net = net; NumClasses = numClasses; _patch = patch; _stride = stride ?? HalfPatch(patch); _largestComponent = largestComponent; _ownsNetwork = ownsNetwork;
    }

    public int NumClasses { get; }

    public (int d, int h, int w) Stride => _stride;

    public byte[] Predict(Volume volume) =>
        Predict(_net, volume.Image, volume.Depth, volume.Height, volume.Width, NumClasses, _patch, _stride, _largestComponent).Labels;

    public string Describe() => $"sliding window {_patch} stride {_stride}{(_largestComponent ? ", largest component" : "")}";

    public void Dispose() { if (_ownsNetwork) _net.Dispose(); }

    public sealed record Result(float[] Probabilities, byte[] Labels, int Windows);

    /// <summary>The default strides: half the patch along each axis (at least 1).</summary>
    public static (int d, int h, int w) HalfPatch((int d, int h, int w) patch) => (Math.Max(1, patch.d / 2), Math.Max(1, patch.h / 2), Math.Max(1, patch.w / 2));

    /// <summary>Window starts along one axis of length <paramref name="size"/> (≥ patch).</summary>
    public static int[] Starts(int size, int patch, int stride)
    {
        if (stride <= 0) throw new ArgumentException($"stride {stride} must be positive");
        int n = (int)Math.Ceiling((size - patch) / (double)stride) + 1;
        return Enumerable.Range(0, n).Select(i => Math.Min(i * stride, size - patch)).ToArray();
    }

    public static Result Predict(nn.Module<Tensor, Tensor> net, float[] volume, int depth, int height, int width, int numClasses,
        (int d, int h, int w) patch, (int d, int h, int w) stride, bool largestComponent = false)
    {
        if (volume.Length != (long)depth * height * width) throw new ArgumentException($"volume has {volume.Length} voxels, {depth}x{height}x{width} needs {(long)depth * height * width}");
        bool wasTraining = net.training;
        net.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            int pd = Math.Max(0, patch.d - depth), ph = Math.Max(0, patch.h - height), pw = Math.Max(0, patch.w - width);
            var device = Runtime.ComputeDevice.Of(net);
            var x = Runtime.ComputeDevice.Upload(volume, new long[] { 1, 1, depth, height, width }, device);
            if (pd + ph + pw > 0)
                x = nn.functional.pad(x, new long[] { pw / 2, pw - pw / 2, ph / 2, ph - ph / 2, pd / 2, pd - pd / 2 });
            int dd = depth + pd, hh = height + ph, ww = width + pw;
            var score = zeros(new long[] { numClasses, dd, hh, ww }, device: device);
            var count = zeros(new long[] { 1, dd, hh, ww }, device: device);
            int windows = 0;
            foreach (int z in Starts(dd, patch.d, stride.d))
                foreach (int y in Starts(hh, patch.h, stride.h))
                    foreach (int xx in Starts(ww, patch.w, stride.w))
                    {
                        using var inner = NewDisposeScope();
                        var win = x.narrow(2, z, patch.d).narrow(3, y, patch.h).narrow(4, xx, patch.w);
                        var p = nn.functional.softmax(net.forward(win), 1)[0];
                        score.narrow(1, z, patch.d).narrow(2, y, patch.h).narrow(3, xx, patch.w).add_(p);
                        count.narrow(1, z, patch.d).narrow(2, y, patch.h).narrow(3, xx, patch.w).add_(1);
                        windows++;
                    }
            var prob = (score / count).narrow(1, pd / 2, depth).narrow(2, ph / 2, height).narrow(3, pw / 2, width).contiguous().cpu();
            var labels = ClassIndex.Of(prob, 0).to_type(ScalarType.Byte).contiguous().data<byte>().ToArray();
            if (largestComponent) labels = ConnectedComponents.LargestComponent(labels, depth, height, width, numClasses, perSlice: false);
            return new Result(prob.data<float>().ToArray(), labels, windows);
        }
        finally { net.train(wasTraining); }
    }
}
