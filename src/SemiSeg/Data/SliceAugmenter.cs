namespace SemiSeg.Data;

/// <summary>
/// The SSL4MIS RandomGenerator: with p = 0.5 a random rot90 (k in 0..3) and flip (axis 0 or 1); otherwise with
/// p = 0.5 a random rotation by an integer angle in [−20, 20); then a resize to the training size, nearest for labels
/// and (by default, for parity with the reference) nearest for images too.
/// </summary>
public sealed class SliceAugmenter
{
    public SliceAugmenter(int height, int width, bool augment = true, bool linearImageResize = false)
    {
        Height = height; Width = width; Augment = augment; LinearImageResize = linearImageResize;
    }

    public int Height { get; }
    public int Width { get; }
    public bool Augment { get; }
    public bool LinearImageResize { get; }

    public (float[] image, byte[]? label) Apply(float[] image, byte[]? label, int h, int w, Random rng)
    {
        if (Augment)
        {
            if (rng.NextDouble() > 0.5)
            {
                int k = rng.Next(4), axis = rng.Next(2);
                int h1 = h, w1 = w;
                image = Resample.Rot90(image, ref h1, ref w1, k);
                if (label != null) { int h2 = h, w2 = w; label = Resample.Rot90(label, ref h2, ref w2, k); }
                h = h1; w = w1;
                image = Resample.Flip(image, h, w, axis);
                if (label != null) label = Resample.Flip(label, h, w, axis);
            }
            else if (rng.NextDouble() > 0.5)
            {
                int angle = rng.Next(-20, 20);
                image = Resample.RotateNearest(image, h, w, angle);
                if (label != null) label = Resample.RotateNearest(label, h, w, angle);
            }
        }
        image = LinearImageResize ? Resample.ZoomLinear(image, h, w, Height, Width) : Resample.ZoomNearest(image, h, w, Height, Width);
        if (label != null) label = Resample.ZoomNearest(label, h, w, Height, Width);
        return (image, label);
    }
}
