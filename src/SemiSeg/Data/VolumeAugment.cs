namespace SemiSeg.Data;

/// <summary>
/// The LA lineage's 3D training augmentation (UA-MT dataloaders/la_heart.py): RandomRotFlip — rot90 by k ∈ {0..3} in
/// the slice plane, then a flip along one in-plane axis — and RandomCrop to the patch, zero-padding first (the image;
/// label 0) where a side is not larger than the patch, by (patch − size)/2 + 3 on each side as the reference does.
/// Axis order (D, H, W); the patch is (80, 112, 112) for the lineage's 112x112x80.
/// </summary>
public static class VolumeAugment
{
    public static (float[] image, byte[]? label) RotFlipCrop(Volume v, (int d, int h, int w) patch, Random rng, bool rotFlip = true)
    {
        float[] img = v.Image; byte[]? lab = v.Label; int d = v.Depth, h = v.Height, w = v.Width;
        if (rotFlip)
        {
            int k = rng.Next(4), axis = rng.Next(2);
            (img, lab, h, w) = Rot90(img, lab, d, h, w, k);
            (img, lab) = Flip(img, lab, d, h, w, axis == 0 ? 1 : 2);
        }
        return Crop(img, lab, d, h, w, patch, rng);
    }

    /// <summary>Rotates every slice by k·90° (numpy rot90 on the (H, W) axes: counter-clockwise).</summary>
    public static (float[] img, byte[]? lab, int h, int w) Rot90(float[] img, byte[]? lab, int d, int h, int w, int k)
    {
        int hl = h, wl = w;
        var ri = Resample.Rot90(img, d, ref h, ref w, k);
        return (ri, lab is null ? null : Resample.Rot90(lab, d, ref hl, ref wl, k), h, w);
    }

    /// <summary>Flips along axis 1 (H) or 2 (W) of (D, H, W).</summary>
    public static (float[] img, byte[]? lab) Flip(float[] img, byte[]? lab, int d, int h, int w, int axis) =>
        (Resample.Flip(img, d, h, w, axis - 1), lab is null ? null : Resample.Flip(lab, d, h, w, axis - 1));

    public static (float[] image, byte[]? label) Crop(float[] img, byte[]? lab, int d, int h, int w, (int d, int h, int w) patch, Random rng)
    {
        // the reference pads every side by (patch - size)//2 + 3 when any side is <= the patch
        bool pad = d <= patch.d || h <= patch.h || w <= patch.w;
        int pd = pad ? Math.Max((patch.d - d) / 2 + 3, 0) : 0, ph = pad ? Math.Max((patch.h - h) / 2 + 3, 0) : 0, pw = pad ? Math.Max((patch.w - w) / 2 + 3, 0) : 0;
        int D = d + 2 * pd, H = h + 2 * ph, W = w + 2 * pw;
        int z0 = rng.Next(D - patch.d + 1), y0 = rng.Next(H - patch.h + 1), x0 = rng.Next(W - patch.w + 1);
        var oi = new float[patch.d * patch.h * patch.w]; var ol = lab is null ? null : new byte[oi.Length];
        for (int z = 0; z < patch.d; z++)
        {
            int sz = z0 + z - pd;
            if (sz < 0 || sz >= d) continue;
            for (int y = 0; y < patch.h; y++)
            {
                int sy = y0 + y - ph;
                if (sy < 0 || sy >= h) continue;
                for (int x = 0; x < patch.w; x++)
                {
                    int sx = x0 + x - pw;
                    if (sx < 0 || sx >= w) continue;
                    int dst = (z * patch.h + y) * patch.w + x, src = (sz * h + sy) * w + sx;
                    oi[dst] = img[src];
                    if (ol != null) ol[dst] = lab![src];
                }
            }
        }
        return (oi, ol);
    }
}
