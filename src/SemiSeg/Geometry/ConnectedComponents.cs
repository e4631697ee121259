namespace SemiSeg.Geometry;

/// <summary>Connected components of label maps (post-processing, pseudo-label cleaning, ellipse fitting's region).</summary>
public static class ConnectedComponents
{
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
}
