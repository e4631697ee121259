using System.Globalization;

namespace SemiSeg.Data;

/// <summary>
/// Whether two files' voxel grids are the same voxels in world space, and a mask carried from one onto the other.
/// Other toolkits store the same grid in another axis order or direction (ITK writes LPS, nibabel's
/// as_closest_canonical RAS, a transposed array with a transposed affine): the voxel-to-world matrices then differ by a
/// signed permutation of the voxel axes, and the mask is reordered onto the reference's grid exactly (no
/// interpolation), as nibabel's io_orientation / ornt_transform / apply_orientation does. Grids that differ otherwise
/// (voxel size, origin, an oblique rotation, the number of voxels) would need resampling, which changes a mask: that
/// is refused with both grids described, never done silently.
/// </summary>
public static class VoxelGrid
{
    /// <summary>How far (in reference voxels) a voxel centre of the other grid may lie from the reference voxel it is
    /// taken to be: 1% of a voxel. Headers are float32 (a relative error of ~6e-8, 3e-5 voxel at the far end of a
    /// 512-voxel axis), and toolkits that re-orthonormalise the direction cosines move corners by well under 1e-3
    /// voxel; a grid 1% of a voxel away is a different grid, resampled somewhere along the way.</summary>
    public const double Tolerance = 0.01;

    static readonly string[] AxisNames = { "x", "y", "z" };

    /// <summary>For each reference voxel axis (x, y, z): the other grid's axis it is stored along, and whether reversed.</summary>
    public sealed record Mapping(int[] Axis, bool[] Reversed)
    {
        public bool IsIdentity => Axis.SequenceEqual(new[] { 0, 1, 2 }) && !Reversed.Any(r => r);

        public override string ToString()
        {
            if (IsIdentity) return "same grid";
            var parts = new List<string>();
            for (int r = 0; r < 3; r++)
            {
                if (Axis[r] != r) parts.Add($"{AxisNames[r]} from {AxisNames[Axis[r]]}");
                if (Reversed[r]) parts.Add($"{AxisNames[r]} reversed");
            }
            return string.Join(", ", parts);
        }
    }

    /// <summary>nibabel's aff2axcodes: for each voxel axis the world direction it points to (R/L, A/P, S/I).</summary>
    public static string AxisCodes(double[] affine)
    {
        var codes = new char[3];
        for (int a = 0; a < 3; a++)
        {
            int w = 0;
            for (int r = 1; r < 3; r++) if (Math.Abs(affine[r * 4 + a]) > Math.Abs(affine[w * 4 + a])) w = r;
            codes[a] = affine[w * 4 + a] >= 0 ? "RAS"[w] : "LPI"[w];
        }
        return new string(codes);
    }

    /// <summary>
    /// How the grid of <paramref name="otherName"/> lies on the reference's: a signed axis permutation when both are
    /// the same voxels in world space (every voxel centre within <see cref="Tolerance"/> of a reference voxel centre);
    /// otherwise an <see cref="InvalidDataException"/> naming both files and what differs. Shapes are (D, H, W),
    /// affines row-major 4x4 voxel (i=x, j=y, k=z) to world.
    /// </summary>
    public static Mapping Match(double[] otherAffine, (int D, int H, int W) otherShape, string otherName,
        double[] referenceAffine, (int D, int H, int W) referenceShape, string referenceName)
    {
        int[] no = { otherShape.W, otherShape.H, otherShape.D }, nr = { referenceShape.W, referenceShape.H, referenceShape.D };
        var inv = Invert(referenceAffine, referenceName);
        var t = Multiply(inv, otherAffine); // other voxel index -> reference voxel index
        var axis = new int[3]; var reversed = new bool[3]; var used = new bool[3];
        bool permutation = true;
        for (int a = 0; a < 3 && permutation; a++)
        {
            int r = 0;
            for (int k = 1; k < 3; k++) if (Math.Abs(t[k * 4 + a]) > Math.Abs(t[r * 4 + a])) r = k;
            if (used[r]) { permutation = false; break; }
            used[r] = true; axis[r] = a; reversed[r] = t[r * 4 + a] < 0;
        }
        double deviation = double.PositiveInfinity;
        if (permutation && Enumerable.Range(0, 3).All(r => no[axis[r]] == nr[r]))
        {
            deviation = 0;
            for (int corner = 0; corner < 8; corner++)
            {
                var p = new double[3];
                for (int a = 0; a < 3; a++) p[a] = (corner >> a & 1) == 1 ? no[a] - 1 : 0;
                for (int r = 0; r < 3; r++)
                {
                    double q = t[r * 4 + 3];
                    for (int a = 0; a < 3; a++) q += t[r * 4 + a] * p[a];
                    double expected = reversed[r] ? nr[r] - 1 - p[axis[r]] : p[axis[r]];
                    deviation = Math.Max(deviation, Math.Abs(q - expected));
                }
            }
        }
        if (deviation <= Tolerance) return new Mapping(axis, reversed);
        throw new InvalidDataException(
            $"'{otherName}' and the reference '{referenceName}' are on different voxel grids ({Differences(otherAffine, no, referenceAffine, nr)}): " +
            $"{Describe(otherAffine, no)} vs {Describe(referenceAffine, nr)}" +
            (double.IsFinite(deviation) ? $"; its voxel centres lie up to {deviation.ToString("0.###", CultureInfo.InvariantCulture)} reference voxels off (tolerance {Tolerance})" : "") +
            ". Scoring it would need resampling, which SemiSeg does not do to a mask; resample it onto the reference's grid first (nearest neighbour, e.g. nibabel.processing.resample_from_to(..., order=0))");
    }

    /// <summary>The mask of <paramref name="otherShape"/> carried onto the reference's grid by <paramref name="m"/>.</summary>
    public static byte[] Apply(byte[] other, (int D, int H, int W) otherShape, Mapping m, (int D, int H, int W) referenceShape)
    {
        if (m.IsIdentity) return other;
        int[] no = { otherShape.W, otherShape.H, otherShape.D }, nr = { referenceShape.W, referenceShape.H, referenceShape.D };
        long[] stride = { 1, no[0], (long)no[0] * no[1] };
        var result = new byte[other.Length];
        var q = new int[3];
        long i = 0;
        for (q[2] = 0; q[2] < nr[2]; q[2]++)
            for (q[1] = 0; q[1] < nr[1]; q[1]++)
                for (q[0] = 0; q[0] < nr[0]; q[0]++)
                {
                    long src = 0;
                    for (int r = 0; r < 3; r++) src += (m.Reversed[r] ? nr[r] - 1 - q[r] : q[r]) * stride[m.Axis[r]];
                    result[i++] = other[src];
                }
        return result;
    }

    static string Describe(double[] a, int[] n)
    {
        static string F(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);
        var spacing = Enumerable.Range(0, 3).Select(c => Math.Sqrt(a[c] * a[c] + a[4 + c] * a[4 + c] + a[8 + c] * a[8 + c]));
        return $"{n[0]}x{n[1]}x{n[2]} voxels (x, y, z) of {string.Join("x", spacing.Select(F))} mm, origin ({F(a[3])}, {F(a[7])}, {F(a[11])}) mm, axes {AxisCodes(a)}";
    }

    static string Differences(double[] o, int[] no, double[] r, int[] nr)
    {
        var diff = new List<string>();
        double Norm(double[] a, int c) => Math.Sqrt(a[c] * a[c] + a[4 + c] * a[4 + c] + a[8 + c] * a[8 + c]);
        if (!no.OrderBy(v => v).SequenceEqual(nr.OrderBy(v => v))) diff.Add("number of voxels");
        if (!Enumerable.Range(0, 3).Select(c => Norm(o, c)).OrderBy(v => v).Zip(Enumerable.Range(0, 3).Select(c => Norm(r, c)).OrderBy(v => v))
                .All(p => Math.Abs(p.First - p.Second) <= 1e-4 * Math.Max(p.First, p.Second))) diff.Add("voxel size");
        // direction cosines: each of the other grid's axes along one of the reference's, either way
        bool aligned = Enumerable.Range(0, 3).All(c => Enumerable.Range(0, 3).Any(k =>
            Math.Abs(Math.Abs(Enumerable.Range(0, 3).Sum(w => o[w * 4 + c] * r[w * 4 + k])) - Norm(o, c) * Norm(r, k)) <= 1e-6 * Norm(o, c) * Norm(r, k)));
        if (!aligned) diff.Add("orientation (not a flip or permutation of the axes)");
        if (diff.Count == 0) diff.Add("origin");
        return "they differ in " + string.Join(", ", diff);
    }

    static double[] Invert(double[] m, string name)
    {
        double a = m[0], b = m[1], c = m[2], d = m[4], e = m[5], f = m[6], g = m[8], h = m[9], k = m[10];
        double det = a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g);
        if (!(Math.Abs(det) > 1e-12)) throw new InvalidDataException($"'{name}': its voxel-to-world matrix is singular (determinant {det}); the header is corrupt");
        var r = new double[]
        {
            (e * k - f * h) / det, (c * h - b * k) / det, (b * f - c * e) / det, 0,
            (f * g - d * k) / det, (a * k - c * g) / det, (c * d - a * f) / det, 0,
            (d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det, 0,
            0, 0, 0, 1,
        };
        for (int i = 0; i < 3; i++) r[i * 4 + 3] = -(r[i * 4] * m[3] + r[i * 4 + 1] * m[7] + r[i * 4 + 2] * m[11]);
        return r;
    }

    static double[] Multiply(double[] x, double[] y)
    {
        var r = new double[16];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 4; k++) r[i * 4 + j] += x[i * 4 + k] * y[k * 4 + j];
        return r;
    }
}
