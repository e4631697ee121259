namespace SemiSeg.Data;

/// <summary>
/// 2D resampling with scipy.ndimage conventions, so results match the SSL4MIS pipeline: zoom maps output index o to
/// input coordinate o·(in−1)/(out−1) (grid_mode=False); order 0 rounds half up; rotation is about the array centre
/// with constant 0 outside; rot90 and flip follow numpy.
/// </summary>
public static class Resample
{
    public static T[] ZoomNearest<T>(T[] src, int h, int w, int oh, int ow)
    {
        if (h == oh && w == ow) return (T[])src.Clone();
        var dst = new T[oh * ow];
        var xs = new int[ow];
        for (int x = 0; x < ow; x++) xs[x] = ow == 1 ? 0 : Math.Min(w - 1, (int)Math.Floor(x * (double)(w - 1) / (ow - 1) + 0.5));
        for (int y = 0; y < oh; y++)
        {
            int sy = oh == 1 ? 0 : Math.Min(h - 1, (int)Math.Floor(y * (double)(h - 1) / (oh - 1) + 0.5));
            int so = sy * w, d = y * ow;
            for (int x = 0; x < ow; x++) dst[d + x] = src[so + xs[x]];
        }
        return dst;
    }

    public static float[] ZoomLinear(float[] src, int h, int w, int oh, int ow)
    {
        if (h == oh && w == ow) return (float[])src.Clone();
        var dst = new float[oh * ow];
        for (int y = 0; y < oh; y++)
        {
            double fy = oh == 1 ? 0 : y * (double)(h - 1) / (oh - 1);
            int y0 = Math.Min((int)fy, h - 1), y1 = Math.Min(y0 + 1, h - 1);
            double ay = fy - y0;
            for (int x = 0; x < ow; x++)
            {
                double fx = ow == 1 ? 0 : x * (double)(w - 1) / (ow - 1);
                int x0 = Math.Min((int)fx, w - 1), x1 = Math.Min(x0 + 1, w - 1);
                double ax = fx - x0;
                double v = (1 - ay) * ((1 - ax) * src[y0 * w + x0] + ax * src[y0 * w + x1]) + ay * ((1 - ax) * src[y1 * w + x0] + ax * src[y1 * w + x1]);
                dst[y * ow + x] = (float)v;
            }
        }
        return dst;
    }

    /// <summary>numpy.rot90(m, k): k quarter turns counter-clockwise in the (row, column) plane; h and w are updated.</summary>
    public static T[] Rot90<T>(T[] src, ref int h, ref int w, int k) => Rot90(src, 1, ref h, ref w, k);

    /// <summary>numpy.rot90(m, k, axes=(1, 2)) on a (depth, h, w) stack: every slice turned k quarter turns
    /// counter-clockwise; h and w are updated.</summary>
    public static T[] Rot90<T>(T[] src, int depth, ref int h, ref int w, int k)
    {
        k = ((k % 4) + 4) % 4;
        var cur = src; int ch = h, cw = w;
        for (int t = 0; t < k; t++)
        {
            var nxt = new T[cur.Length];
            // out[z, i, j] = in[z, j, cw-1-i], out slice shape (cw, ch)
            for (int z = 0; z < depth; z++)
                for (int i = 0; i < cw; i++)
                    for (int j = 0; j < ch; j++)
                        nxt[(z * cw + i) * ch + j] = cur[(z * ch + j) * cw + (cw - 1 - i)];
            cur = nxt; (ch, cw) = (cw, ch);
        }
        h = ch; w = cw;
        return k == 0 ? (T[])src.Clone() : cur;
    }

    /// <summary>numpy.flip along axis 0 (rows) or 1 (columns).</summary>
    public static T[] Flip<T>(T[] src, int h, int w, int axis) => Flip(src, 1, h, w, axis);

    /// <summary>numpy.flip of every slice of a (depth, h, w) stack along its axis 0 (rows) or 1 (columns).</summary>
    public static T[] Flip<T>(T[] src, int depth, int h, int w, int axis)
    {
        var dst = new T[src.Length];
        for (int z = 0; z < depth; z++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    dst[(z * h + y) * w + x] = axis == 0 ? src[(z * h + h - 1 - y) * w + x] : src[(z * h + y) * w + (w - 1 - x)];
        return dst;
    }

    /// <summary>scipy.ndimage.rotate(reshape=False, order=0, mode='constant', cval=0) about the array centre.</summary>
    public static T[] RotateNearest<T>(T[] src, int h, int w, double degrees)
    {
        double a = degrees * Math.PI / 180, c = Math.Cos(a), s = Math.Sin(a);
        double cy = (h - 1) / 2.0, cx = (w - 1) / 2.0;
        var dst = new T[src.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                double dy = y - cy, dx = x - cx;
                double sy = c * dy - s * dx + cy, sx = s * dy + c * dx + cx;
                int iy = (int)Math.Floor(sy + 0.5), ix = (int)Math.Floor(sx + 0.5);
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) dst[y * w + x] = src[iy * w + ix];
            }
        return dst;
    }
}
