namespace SemiSeg.Evaluation;

/// <summary>
/// Surface extraction and exact Euclidean distance transform on (D, H, W) masks, x fastest, with anisotropic spacing
/// (z, y, x). Surfaces follow medpy/scipy: mask XOR binary_erosion(mask, 1-connectivity), voxels beyond the array
/// edge counting as background (border_value = 0). A volume with D = 1 is treated as 2D (4-connectivity), as medpy
/// does for a 2D array. The transform is the separable exact algorithm of Felzenszwalb &amp; Huttenlocher (2012).
/// </summary>
public static class SurfaceDistance
{
    public static bool[] Surface(bool[] mask, int d, int h, int w)
    {
        var s = new bool[mask.Length];
        int hw = h * w;
        for (int z = 0; z < d; z++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int i = z * hw + y * w + x;
                    if (!mask[i]) continue;
                    bool interior = x > 0 && mask[i - 1] && x < w - 1 && mask[i + 1] && y > 0 && mask[i - w] && y < h - 1 && mask[i + w];
                    if (interior && d > 1) interior = z > 0 && mask[i - hw] && z < d - 1 && mask[i + hw];
                    s[i] = !interior;
                }
        return s;
    }

    /// <summary>Squared Euclidean distance (in spacing units) from every voxel to the nearest true voxel of
    /// <paramref name="features"/>; +∞ everywhere when there is none.</summary>
    public static double[] SquaredDistanceTo(bool[] features, int d, int h, int w, double[] spacing)
    {
        var f = new double[features.Length];
        for (int i = 0; i < f.Length; i++) f[i] = features[i] ? 0 : double.PositiveInfinity;
        int n = Math.Max(d, Math.Max(h, w));
        var buf = new double[n]; var outp = new double[n]; var v = new int[n]; var zz = new double[n + 1];
        int hw = h * w;
        // along x
        double wx = spacing[2] * spacing[2], wy = spacing[1] * spacing[1], wz = spacing[0] * spacing[0];
        for (int z = 0; z < d; z++)
            for (int y = 0; y < h; y++)
            {
                int o = z * hw + y * w;
                for (int x = 0; x < w; x++) buf[x] = f[o + x];
                Pass(buf, w, wx, outp, v, zz);
                for (int x = 0; x < w; x++) f[o + x] = outp[x];
            }
        for (int z = 0; z < d; z++)
            for (int x = 0; x < w; x++)
            {
                int o = z * hw + x;
                for (int y = 0; y < h; y++) buf[y] = f[o + y * w];
                Pass(buf, h, wy, outp, v, zz);
                for (int y = 0; y < h; y++) f[o + y * w] = outp[y];
            }
        if (d > 1)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int o = y * w + x;
                    for (int z = 0; z < d; z++) buf[z] = f[o + z * hw];
                    Pass(buf, d, wz, outp, v, zz);
                    for (int z = 0; z < d; z++) f[o + z * hw] = outp[z];
                }
        return f;
    }

    /// <summary>1D lower envelope of parabolas a·(q − p)² + f(p).</summary>
    static void Pass(double[] f, int n, double a, double[] d, int[] v, double[] z)
    {
        int k = -1;
        for (int q = 0; q < n; q++)
        {
            if (double.IsPositiveInfinity(f[q])) continue;
            if (k < 0) { k = 0; v[0] = q; z[0] = double.NegativeInfinity; z[1] = double.PositiveInfinity; continue; }
            double s;
            while (true)
            {
                int p = v[k];
                s = ((f[q] + a * q * q) - (f[p] + a * p * p)) / (2 * a * (q - p));
                if (s <= z[k]) { k--; if (k < 0) break; } else break;
            }
            if (k < 0) { k = 0; v[0] = q; z[0] = double.NegativeInfinity; z[1] = double.PositiveInfinity; continue; }
            k++; v[k] = q; z[k] = s; z[k + 1] = double.PositiveInfinity;
        }
        if (k < 0) { for (int q = 0; q < n; q++) d[q] = double.PositiveInfinity; return; }
        int j = 0;
        for (int q = 0; q < n; q++)
        {
            while (z[j + 1] < q) j++;
            double t = q - v[j];
            d[q] = a * t * t + f[v[j]];
        }
    }

    /// <summary>Distances from each surface voxel of <paramref name="from"/> to the nearest surface voxel of <paramref name="to"/>
    /// (medpy's __surface_distances(result=from, reference=to)).</summary>
    public static double[] Directed(bool[] fromSurface, double[] squaredDistToOtherSurface)
    {
        var list = new List<double>();
        for (int i = 0; i < fromSurface.Length; i++)
            if (fromSurface[i]) list.Add(Math.Sqrt(squaredDistToOtherSurface[i]));
        return list.ToArray();
    }

    /// <summary>numpy.percentile with linear interpolation.</summary>
    public static double Percentile(double[] values, double q)
    {
        if (values.Length == 0) return double.NaN;
        var a = (double[])values.Clone();
        Array.Sort(a);
        double idx = q / 100.0 * (a.Length - 1);
        int lo = (int)Math.Floor(idx), hi = (int)Math.Ceiling(idx);
        return a[lo] + (a[hi] - a[lo]) * (idx - lo);
    }
}
