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

    /// <summary>
    /// Keeps, for every foreground class, only its largest connected component in each item of a (N, H, W) or
    /// (D, H, W) label map (BCP's get_ACDC_2DLargestCC per slice; LA's getLargestCC per volume). Connectivity: 4/6
    /// (faces) or 8/26 (full, skimage.measure.label's default). <paramref name="perSlice"/> treats the first axis as a
    /// stack of independent 2D maps.
    /// </summary>
    public static byte[] LargestComponent(byte[] labels, int d, int h, int w, int numClasses, bool perSlice, bool fullConnectivity = true)
    {
        var result = (byte[])labels.Clone();
        int items = perSlice ? d : 1, depth = perSlice ? 1 : d, size = depth * h * w;
        var comp = new int[size];
        var queue = new int[size];
        for (int item = 0; item < items; item++)
        {
            int off = item * size;
            for (int c = 1; c < numClasses; c++)
            {
                Array.Clear(comp);
                int next = 0, bestId = 0, bestSize = 0;
                for (int start = 0; start < size; start++)
                {
                    if (labels[off + start] != c || comp[start] != 0) continue;
                    int id = ++next, head = 0, tail = 0, count = 0;
                    queue[tail++] = start; comp[start] = id;
                    while (head < tail)
                    {
                        int v = queue[head++]; count++;
                        int z = v / (h * w), y = v / w % h, x = v % w;
                        for (int dz = -1; dz <= 1; dz++)
                            for (int dy = -1; dy <= 1; dy++)
                                for (int dx = -1; dx <= 1; dx++)
                                {
                                    int manhattan = Math.Abs(dz) + Math.Abs(dy) + Math.Abs(dx);
                                    if (manhattan == 0 || (!fullConnectivity && manhattan > 1)) continue;
                                    int nz = z + dz, ny = y + dy, nx = x + dx;
                                    if (nz < 0 || nz >= depth || ny < 0 || ny >= h || nx < 0 || nx >= w) continue;
                                    int u = (nz * h + ny) * w + nx;
                                    if (comp[u] != 0 || labels[off + u] != c) continue;
                                    comp[u] = id; queue[tail++] = u;
                                }
                    }
                    if (count > bestSize) { bestSize = count; bestId = id; }
                }
                if (next <= 1) continue;
                for (int v = 0; v < size; v++)
                    if (comp[v] != 0 && comp[v] != bestId) result[off + v] = 0;
            }
        }
        return result;
    }

    /// <summary><see cref="LargestComponent(byte[], int, int, int, int, bool, bool)"/> on a (N, H, W) integer tensor, slice by slice.</summary>
    public static Tensor LargestComponentPerSlice(Tensor labels, int numClasses)
    {
        long n = labels.shape[0], h = labels.shape[1], w = labels.shape[2];
        using var asBytes = labels.to_type(ScalarType.Byte).contiguous();
        var kept = LargestComponent(asBytes.data<byte>().ToArray(), (int)n, (int)h, (int)w, numClasses, perSlice: true);
        return tensor(kept, new[] { n, h, w }).to_type(labels.dtype);
    }

    /// <summary>Each foreground class's largest 3D connected component (26-connectivity) in every volume of a
    /// (N, D, H, W) integer tensor: the LA lineage's getLargestCC on pseudo-labels.</summary>
    public static Tensor LargestComponentPerVolume(Tensor labels, int numClasses)
    {
        long n = labels.shape[0], d = labels.shape[1], h = labels.shape[2], w = labels.shape[3], size = d * h * w;
        using var asBytes = labels.to_type(ScalarType.Byte).contiguous();
        var all = asBytes.data<byte>().ToArray();
        var kept = new byte[all.Length];
        for (long i = 0; i < n; i++)
        {
            var one = LargestComponent(all.AsSpan((int)(i * size), (int)size).ToArray(), (int)d, (int)h, (int)w, numClasses, perSlice: false);
            Array.Copy(one, 0, kept, i * size, size);
        }
        return tensor(kept, new[] { n, d, h, w }).to_type(labels.dtype);
    }
}
