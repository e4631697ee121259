using SemiSeg.Data;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Inference;

/// <summary>
/// Slice-wise 2D inference of a volume as SSL4MIS test_single_volume does it: each slice is resized to the training
/// size (nearest by default), the network predicts, argmax, and the label map is resized back (nearest). The network
/// is any 2D one taking (N, 1, H, W) slices: a <see cref="Segmenter2D"/>, or the <see cref="SoftmaxEnsemble"/> of a
/// method that predicts with several networks (C3S3).
/// </summary>
public sealed class SliceWiseInferer : IInferer
{
    readonly nn.Module<Tensor, Tensor> _net;
    readonly string _name;
    readonly int _patchH, _patchW;
    readonly bool _linear, _largestComponent, _ownsNetwork;

    /// <param name="largestComponent">post-processing: each foreground class keeps only its largest 26-connected
    /// component in the whole volume (UA-MT/BCP's getLargestCC, the LA protocol's nms=1; 8-connected for one image).</param>
    /// <param name="ownsNetwork">dispose the network with the inferer.</param>
    public SliceWiseInferer(Segmenter2D net, int patchH, int patchW, bool linearImageResize = false, bool largestComponent = false, bool ownsNetwork = false)
        : this(net, net.Config.NumClasses, patchH, patchW, linearImageResize, largestComponent, ownsNetwork) { }

    /// <param name="net">a 2D network or ensemble with <paramref name="numClasses"/> outputs.</param>
    public SliceWiseInferer(nn.Module<Tensor, Tensor> net, int numClasses, int patchH, int patchW, bool linearImageResize = false, bool largestComponent = false, bool ownsNetwork = false)
    {
        _net = net; NumClasses = numClasses; _patchH = patchH; _patchW = patchW; _linear = linearImageResize; _largestComponent = largestComponent; _ownsNetwork = ownsNetwork;
        _name = net switch
        {
            Segmenter2D s => Segmenter2D.Name(s.Config.Kind),
            SoftmaxEnsemble e => $"ensemble ({string.Join(" + ", e.Kinds)})",
            _ => net.GetName(),
        };
    }

    public int NumClasses { get; }

    public byte[] Predict(Volume volume)
    {
        var pred = PredictVolume(_net, volume, _patchH, _patchW, _linear);
        return _largestComponent ? KeepLargestComponent(pred, volume, NumClasses) : pred;
    }

    public string Describe() => $"slice-wise {_name} at {_patchH}x{_patchW}{(_largestComponent ? ", largest component" : "")}";

    public void Dispose() { if (_ownsNetwork) _net.Dispose(); }

    /// <summary>Each foreground class's largest connected component in the whole volume (26-connected).</summary>
    public static byte[] KeepLargestComponent(byte[] pred, Volume vol, int numClasses) =>
        Geometry.ConnectedComponents.LargestComponent(pred, vol.Depth, vol.Height, vol.Width, numClasses, perSlice: false);

    /// <summary>The label map of <paramref name="vol"/> from any 2D network taking (N, 1, H, W) slices.</summary>
    public static byte[] PredictVolume(nn.Module<Tensor, Tensor> net, Volume vol, int patchH, int patchW, bool linearImageResize = false, int sliceBatch = 16)
    {
        var result = new byte[vol.Image.Length];
        var device = Runtime.ComputeDevice.Of(net);
        bool wasTraining = net.training;
        net.eval();
        try
        {
            using var noGrad = no_grad();
            for (int z0 = 0; z0 < vol.Depth; z0 += sliceBatch)
            {
                int n = Math.Min(sliceBatch, vol.Depth - z0);
                var buf = new float[n * patchH * patchW];
                for (int k = 0; k < n; k++)
                {
                    var s = vol.SliceImage(z0 + k);
                    var r = linearImageResize ? Resample.ZoomLinear(s, vol.Height, vol.Width, patchH, patchW) : Resample.ZoomNearest(s, vol.Height, vol.Width, patchH, patchW);
                    Array.Copy(r, 0, buf, k * patchH * patchW, r.Length);
                }
                using var scope = NewDisposeScope();
                var x = Runtime.ComputeDevice.Upload(buf, new long[] { n, 1, patchH, patchW }, device); // a volume's slice is one channel
                var pred = ClassIndex.Of(net.forward(x)).to_type(ScalarType.Byte);
                var arr = pred.cpu().data<byte>().ToArray();
                for (int k = 0; k < n; k++)
                {
                    var sl = new byte[patchH * patchW];
                    Array.Copy(arr, k * patchH * patchW, sl, 0, sl.Length);
                    var back = Resample.ZoomNearest(sl, patchH, patchW, vol.Height, vol.Width);
                    Array.Copy(back, 0, result, (z0 + k) * vol.SliceSize, back.Length);
                }
            }
        }
        finally { net.train(wasTraining); }
        return result;
    }
}
