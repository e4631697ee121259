using SemiSeg.Data;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Training;

/// <summary>
/// Slice-wise 2D inference of a volume as SSL4MIS test_single_volume does it: each slice is resized to the training
/// size (nearest by default), the network predicts, argmax, and the label map is resized back (nearest).
/// </summary>
public static class Inference
{
    /// <summary>Post-processing: each foreground class keeps only its largest 26-connected component in the whole
    /// volume (UA-MT/BCP's getLargestCC, the LA protocol's nms=1; for a single image, 8-connected in 2D).</summary>
    public static byte[] KeepLargestComponent(byte[] pred, Volume vol, int numClasses) =>
        Methods.PseudoLabels.LargestComponent(pred, vol.Depth, vol.Height, vol.Width, numClasses, perSlice: false);

    /// <summary>Any 2D network taking (N, 1, H, W) slices: a UNet, or the <see cref="SoftmaxEnsemble"/> of a method that
    /// predicts with several networks.</summary>
    public static byte[] PredictVolume(nn.Module<Tensor, Tensor> net, Volume vol, int patchH, int patchW, bool linearImageResize = false, int sliceBatch = 16)
    {
        var result = new byte[vol.Image.Length];
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
                var x = tensor(buf, new long[] { n, 1, patchH, patchW }); // a volume's slice is one channel
                var pred = net.forward(x).argmax(1).to_type(ScalarType.Byte);
                var arr = pred.data<byte>().ToArray();
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
