using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods;

/// <summary>Mixing masks and strong image perturbations used by the semi-supervised methods.</summary>
public static class Perturbations
{
    /// <summary>
    /// The Mean Teacher lineage's teacher input (SSL4MIS train_mean_teacher_2D.py): x + clamp(randn_like(x)·std, −c, c);
    /// a clamp of 0 or less leaves the noise unclamped.
    /// </summary>
    public static Tensor GaussianNoise(Tensor x, double std, double clamp)
    {
        var noise = randn_like(x) * std;
        return x + (clamp > 0 ? noise.clamp(-clamp, clamp) : noise);
    }

    /// <summary>
    /// UniMatch's obtain_cutmix_box: with probability <paramref name="p"/>, a box of area U(0.02, 0.4)·H·W and aspect
    /// ratio U(0.3, 1/0.3) at a random position (redrawn until it fits), as a (H, W) 0/1 mask; all zeros otherwise.
    /// </summary>
    public static float[] CutMixBox(int h, int w, Random rng, double p = 0.5, double minArea = 0.02, double maxArea = 0.4, double minRatio = 0.3)
    {
        var mask = new float[h * w];
        if (rng.NextDouble() > p) return mask;
        while (true)
        {
            double area = (minArea + rng.NextDouble() * (maxArea - minArea)) * h * w;
            double ratio = minRatio + rng.NextDouble() * (1 / minRatio - minRatio);
            int bw = (int)Math.Sqrt(area / ratio), bh = (int)Math.Sqrt(area * ratio);
            if (bw < 1 || bh < 1 || bw > w || bh > h) continue;
            int x = rng.Next(0, w - bw + 1), y = rng.Next(0, h - bh + 1);
            for (int yy = y; yy < y + bh; yy++)
                for (int xx = x; xx < x + bw; xx++) mask[yy * w + xx] = 1;
            return mask;
        }
    }

    /// <summary>
    /// BCP's generate_mask: ones with a zero box of (2/3·H) × (2/3·W) at a random position. x = a·M + b·(1−M) puts a
    /// patch of b into a.
    /// </summary>
    public static float[] BcpMask(int h, int w, Random rng, double fraction = 2.0 / 3.0)
    {
        var mask = Enumerable.Repeat(1f, h * w).ToArray();
        int bh = (int)(h * fraction), bw = (int)(w * fraction);
        int y = rng.Next(0, h - bh + 1), x = rng.Next(0, w - bw + 1);
        for (int yy = y; yy < y + bh; yy++)
            for (int xx = x; xx < x + bw; xx++) mask[yy * w + xx] = 0;
        return mask;
    }

    /// <summary>
    /// M3HL's mutual mask: the (H, W) plane cut into a <paramref name="grid"/>×<paramref name="grid"/> grid of blocks
    /// (the last row/column absorbs any remainder), of which round(<paramref name="ratio"/>·grid²) blocks, drawn without
    /// replacement, are set to 0 and the rest stay 1. x = a·M + b·(1−M) shows b in the zeroed blocks.
    /// </summary>
    public static float[] GridBlockMask(int h, int w, Random rng, int grid = 4, double ratio = 0.5)
    {
        if (grid < 1 || grid > Math.Min(h, w)) throw new ArgumentException($"grid {grid} does not fit a {h}x{w} image");
        var mask = Enumerable.Repeat(1f, h * w).ToArray();
        int blocks = grid * grid, zeroed = (int)Math.Round(ratio * blocks);
        var order = Enumerable.Range(0, blocks).ToArray();
        rng.Shuffle(order);
        int bh = h / grid, bw = w / grid;
        foreach (int b in order.Take(zeroed))
        {
            int gy = b / grid, gx = b % grid;
            int y0 = gy * bh, y1 = gy == grid - 1 ? h : y0 + bh, x0 = gx * bw, x1 = gx == grid - 1 ? w : x0 + bw;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) mask[y * w + x] = 0;
        }
        return mask;
    }

    /// <summary>
    /// Strong appearance perturbation of a grey-level image batch (B, 1, H, W) in [0, 1], the grey-scale part of
    /// UniMatch's pipeline: with probability <paramref name="jitterP"/> colour jitter (brightness and contrast factors in
    /// [1−s, 1+s]; saturation and hue have no effect on one channel), with probability <paramref name="blurP"/> a
    /// Gaussian blur with σ ~ U(0.1, 2.0); each image draws its own parameters from <paramref name="rng"/>.
    /// </summary>
    public static Tensor Strong(Tensor images, Random rng, double brightness = 0.5, double contrast = 0.5, double jitterP = 0.8, double blurP = 0.5)
    {
        using var scope = NewDisposeScope();
        var outs = new List<Tensor>();
        for (long i = 0; i < images.shape[0]; i++)
        {
            var x = images.narrow(0, i, 1);
            if (rng.NextDouble() < jitterP)
            {
                double b = 1 + (rng.NextDouble() * 2 - 1) * brightness, c = 1 + (rng.NextDouble() * 2 - 1) * contrast;
                // torchvision order for these two: brightness then contrast (blend with the mean grey level)
                x = (x * b).clamp(0, 1);
                var mean = x.mean();
                x = (c * x + (1 - c) * mean).clamp(0, 1);
            }
            if (rng.NextDouble() < blurP) x = GaussianBlur(x, 0.1 + rng.NextDouble() * 1.9);
            outs.Add(x);
        }
        return cat(outs, 0).MoveToOuterDisposeScope();
    }

    /// <summary>Cutout (DeVries &amp; Taylor 2017): with probability <paramref name="p"/> per image, a box with the
    /// geometry of <see cref="CutMixBox"/> is set to <paramref name="fill"/>. Returns the images and the (B, H, W) boxes.</summary>
    public static (Tensor images, Tensor boxes) Cutout(Tensor images, Random rng, double p = 0.5, float fill = 0f)
    {
        using var scope = NewDisposeScope();
        long n = images.shape[0], h = images.shape[2], w = images.shape[3];
        var boxes = tensor(Enumerable.Range(0, (int)n).SelectMany(_ => CutMixBox((int)h, (int)w, rng, p)).ToArray(), new[] { n, h, w }, device: images.device);
        var b = boxes.unsqueeze(1).to_type(images.dtype);
        var outp = images * (1 - b) + fill * b;
        return (outp.MoveToOuterDisposeScope(), boxes.MoveToOuterDisposeScope());
    }

    /// <summary>Separable Gaussian blur of (B, C, H, W) with reflect padding, kernel radius ⌈3σ⌉.</summary>
    public static Tensor GaussianBlur(Tensor x, double sigma)
    {
        using var scope = NewDisposeScope();
        int r = Math.Max(1, (int)Math.Ceiling(3 * sigma));
        var k = new float[2 * r + 1];
        for (int i = -r; i <= r; i++) k[i + r] = (float)Math.Exp(-i * i / (2 * sigma * sigma));
        float sum = k.Sum();
        for (int i = 0; i < k.Length; i++) k[i] /= sum;
        long c = x.shape[1];
        var kx = tensor(k, device: x.device).reshape(1, 1, 1, k.Length).expand(c, 1, 1, k.Length).contiguous();
        var ky = tensor(k, device: x.device).reshape(1, 1, k.Length, 1).expand(c, 1, k.Length, 1).contiguous();
        var p = nn.functional.pad(x, new long[] { r, r, r, r }, PaddingModes.Reflect);
        var y = nn.functional.conv2d(nn.functional.conv2d(p, kx, groups: c), ky, groups: c);
        return y.MoveToOuterDisposeScope();
    }
}
