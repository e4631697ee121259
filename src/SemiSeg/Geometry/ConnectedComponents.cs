namespace SemiSeg.Geometry;

/// <summary>Connected components of label maps (post-processing, pseudo-label cleaning, ellipse fitting's region).</summary>
public static class ConnectedComponents
{
    /// <summary>
    /// Keeps, for every foreground class, only its largest connected component in each item of a (N, H, W) or
    /// (D, H, W) label map (BCP's get_ACDC_2DLargestCC per slice; LA's getLargestCC per volume). Connectivity: 4/6
    /// (faces) or 8/26 (full, skimage.measure.label's default). <paramref name="perSlice"/> treats the first axis as a
    /// stack of independent 2D maps. Of equally large components the one whose first voxel comes first in raster
    /// order is kept, as the references' np.argmax over skimage's label counts does (skimage numbers components in
    /// that order). Checked against scikit-image on the fixture of Fixtures/fidelity/largest_cc.py.
    /// One raster pass per item joins each voxel with its already-visited neighbours of the same class (union-find,
    /// every component's root its first voxel), then a pass in index order counts and keeps. On 4 slices of a
    /// network's noisy 96x96 pseudo-labels (92% foreground, 4 classes: what BCP and M3HL clean per iteration at the
    /// table's batch) 0.9-1.0 ms where a breadth-first search per class took 2.7-4.6 ms; on an LA-sized 80x112x112
    /// binary volume 31-45 ms against 67-120.
    /// </summary>
    public static byte[] LargestComponent(byte[] labels, int d, int h, int w, int numClasses, bool perSlice, bool fullConnectivity = true)
    {
        var result = (byte[])labels.Clone();
        int items = perSlice ? d : 1, depth = perSlice ? 1 : d, size = depth * h * w;
        var previous = PreviousNeighbours(depth > 1, fullConnectivity);
        var parent = new int[size];
        var count = new int[size];
        var bestRoot = new int[numClasses];
        var bestCount = new int[numClasses];
        for (int item = 0; item < items; item++)
        {
            var map = new ReadOnlySpan<byte>(labels, item * size, size);
            Join(map, depth, h, w, previous, parent);
            // every parent has a smaller index than its child, so one pass in index order points each voxel at its root
            Array.Clear(count);
            for (int v = 0; v < size; v++)
            {
                parent[v] = parent[parent[v]];
                if (map[v] != 0) count[parent[v]]++;
            }
            // roots are first voxels, visited in raster order: strictly larger keeps the first of equal sizes
            Array.Fill(bestRoot, -1); Array.Clear(bestCount);
            for (int v = 0; v < size; v++)
            {
                int c = map[v];
                if (c == 0 || c >= numClasses || parent[v] != v) continue;
                if (count[v] > bestCount[c]) { bestCount[c] = count[v]; bestRoot[c] = v; }
            }
            var kept = new Span<byte>(result, item * size, size);
            for (int v = 0; v < size; v++)
            {
                int c = map[v];
                if (c != 0 && c < numClasses && parent[v] != bestRoot[c]) kept[v] = 0;
            }
        }
        return result;
    }

    /// <summary>The neighbours a raster scan has already visited: (dz, dy, dx) before the voxel in raster order,
    /// of the 8 (2D) or 26 (3D) neighbours, or of the 4 / 6 sharing a face.</summary>
    static (int dz, int dy, int dx)[] PreviousNeighbours(bool volume, bool full)
    {
        var list = new List<(int, int, int)>();
        for (int dz = volume ? -1 : 0; dz <= 0; dz++)
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                {
                    bool before = dz < 0 || (dz == 0 && (dy < 0 || (dy == 0 && dx < 0)));   // raster order
                    if (!before) continue;
                    if (!full && Math.Abs(dz) + Math.Abs(dy) + Math.Abs(dx) > 1) continue;
                    list.Add((dz, dy, dx));
                }
        return list.ToArray();
    }

    /// <summary>After this, every foreground voxel's parent chain ends at its component's first voxel (the
    /// smallest index), and every voxel's parent index is at most its own; background voxels are their own parents.</summary>
    static void Join(ReadOnlySpan<byte> map, int depth, int h, int w, (int dz, int dy, int dx)[] previous, int[] parent)
    {
        int plane = h * w;
        var offsets = previous.Select(n => n.dz * plane + n.dy * w + n.dx).ToArray();
        for (int z = 0, v = 0; z < depth; z++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++, v++)
                {
                    parent[v] = v;
                    byte c = map[v];
                    if (c == 0) continue;
                    int root = v;   // v's root so far
                    bool inside = y > 0 && x > 0 && x < w - 1 && (depth == 1 || (z > 0 && y < h - 1));
                    for (int k = 0; k < offsets.Length; k++)
                    {
                        if (!inside)
                        {
                            var (dz, dy, dx) = previous[k];
                            int nz = z + dz, ny = y + dy, nx = x + dx;
                            if (nz < 0 || ny < 0 || ny >= h || nx < 0 || nx >= w) continue;   // dz <= 0: no depth bound to pass
                        }
                        int u = v + offsets[k];
                        if (map[u] != c) continue;
                        int other = Find(parent, u);
                        if (other == root) continue;
                        // the smaller root stays: a root is its component's first voxel
                        if (other < root) { parent[root] = other; root = other; }
                        else parent[other] = root;
                    }
                }
    }

    static int Find(int[] parent, int v)
    {
        while (parent[v] != v) { parent[v] = parent[parent[v]]; v = parent[v]; }   // path halving
        return v;
    }
}
