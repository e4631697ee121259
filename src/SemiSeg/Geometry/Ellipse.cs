using MathNet.Numerics.LinearAlgebra;


namespace SemiSeg.Geometry;

/// <summary>
/// An ellipse in image coordinates (x = column, y = row, pixel centres at integers): centre, semi-axes A ≥ B and the
/// angle of the A axis from +x in radians, in (−π/2, π/2].
/// </summary>
public sealed record Ellipse(double Cx, double Cy, double A, double B, double Angle)
{
    /// <summary>Ramanujan's first approximation π·[3(a+b) − √((3a+b)(a+3b))], what HC18 uses for head circumference.</summary>
    public static double Ramanujan(double a, double b) => Math.PI * (3 * (a + b) - Math.Sqrt((3 * a + b) * (a + 3 * b)));

    public double Perimeter => Ramanujan(A, B);
    public double Area => Math.PI * A * B;

    /// <summary>Normalised elliptical radius √((u/A)² + (v/B)²) of a point, u and v along the axes: 1 on the ellipse.</summary>
    public double Radius(double x, double y) => Radius(x, y, Math.Cos(Angle), Math.Sin(Angle));

    /// <summary><see cref="Radius(double, double)"/> with the axis direction's cosine and sine given (the per-pixel
    /// loops compute them once per ellipse rather than per pixel).</summary>
    internal double Radius(double x, double y, double cos, double sin)
    {
        double dx = x - Cx, dy = y - Cy;
        double u = dx * cos + dy * sin, v = -dx * sin + dy * cos;
        return Math.Sqrt(u * u / (A * A) + v * v / (B * B));
    }

    /// <summary><see cref="Radius(double, double)"/> at every pixel centre of a (H, W) grid, row-major.</summary>
    public double[] RadiusMap(int height, int width)
    {
        double c = Math.Cos(Angle), s = Math.Sin(Angle);
        var r = new double[height * width];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                r[y * width + x] = Radius(x, y, c, s);
        return r;
    }

    /// <summary>The filled ellipse as a (H, W) 0/1 mask: pixel centres with radius ≤ 1.</summary>
    public byte[] Rasterize(int height, int width, byte value = 1)
    {
        var r = RadiusMap(height, width);
        var m = new byte[height * width];
        for (int i = 0; i < m.Length; i++)
            if (r[i] <= 1) m[i] = value;
        return m;
    }

    /// <summary><paramref name="n"/> points evenly spaced in the parametric angle.</summary>
    public IEnumerable<(double X, double Y)> Points(int n)
    {
        double c = Math.Cos(Angle), s = Math.Sin(Angle);
        for (int i = 0; i < n; i++)
        {
            double t = 2 * Math.PI * i / n, u = A * Math.Cos(t), v = B * Math.Sin(t);
            yield return (Cx + u * c - v * s, Cy + u * s + v * c);
        }
    }
}

/// <summary>Least-squares ellipse fitting and the measurements built on it.</summary>
public static class EllipseFit
{
    /// <summary>
    /// Fitzgibbon, Pilu &amp; Fisher's direct least-squares ellipse fit (PAMI 1999) in Halíř &amp; Flusser's numerically
    /// stable form (1998): minimise ‖D·a‖² subject to 4AC − B² = 1 for the conic Ax² + Bxy + Cy² + Dx + Ey + F = 0, which
    /// always returns an ellipse. Points are centred and scaled first. Null for fewer than 6 points or a degenerate set.
    /// </summary>
    public static Ellipse? Fit(IReadOnlyList<(double X, double Y)> points)
    {
        int n = points.Count;
        if (n < 6) return null;
        double mx = points.Average(p => p.X), my = points.Average(p => p.Y);
        double scale = Math.Sqrt(points.Average(p => (p.X - mx) * (p.X - mx) + (p.Y - my) * (p.Y - my)) / 2);
        if (!(scale > 0)) return null;
        var d1 = Matrix<double>.Build.Dense(n, 3);
        var d2 = Matrix<double>.Build.Dense(n, 3);
        for (int i = 0; i < n; i++)
        {
            double x = (points[i].X - mx) / scale, y = (points[i].Y - my) / scale;
            d1[i, 0] = x * x; d1[i, 1] = x * y; d1[i, 2] = y * y;
            d2[i, 0] = x; d2[i, 1] = y; d2[i, 2] = 1;
        }
        var s1 = d1.TransposeThisAndMultiply(d1);
        var s2 = d1.TransposeThisAndMultiply(d2);
        var s3 = d2.TransposeThisAndMultiply(d2);
        if (Math.Abs(s3.Determinant()) < 1e-12) return null;
        var t = -s3.Inverse() * s2.Transpose();
        var m = s1 + s2 * t;
        // premultiply by C1⁻¹ for C1 = [[0, 0, 2], [0, −1, 0], [2, 0, 0]]
        var reduced = Matrix<double>.Build.DenseOfRowVectors(m.Row(2) / 2, -m.Row(1), m.Row(0) / 2);
        var evd = reduced.Evd();
        Vector<double>? a1 = null;
        double best = double.NegativeInfinity;
        for (int k = 0; k < 3; k++)
        {
            if (Math.Abs(evd.EigenValues[k].Imaginary) > 1e-9 * Math.Max(1, Math.Abs(evd.EigenValues[k].Real))) continue;
            var v = evd.EigenVectors.Column(k);
            double cond = 4 * v[0] * v[2] - v[1] * v[1];
            if (cond > 0 && cond > best) { best = cond; a1 = v; }
        }
        if (a1 is null) return null;
        var a2 = t * a1;
        var e = FromConic(a1[0], a1[1], a1[2], a2[0], a2[1], a2[2]);
        return e is null ? null : e with { Cx = e.Cx * scale + mx, Cy = e.Cy * scale + my, A = e.A * scale, B = e.B * scale };
    }

    /// <summary>Centre, semi-axes and angle of the ellipse Ax² + Bxy + Cy² + Dx + Ey + F = 0; null if it is not one.</summary>
    public static Ellipse? FromConic(double a, double b, double c, double d, double e, double f)
    {
        double den = b * b - 4 * a * c;
        if (den >= 0) return null;
        double x0 = (2 * c * d - b * e) / den, y0 = (2 * a * e - b * d) / den;
        double f0 = a * x0 * x0 + b * x0 * y0 + c * y0 * y0 + d * x0 + e * y0 + f;
        double phi = 0.5 * Math.Atan2(b, a - c);
        double cp = Math.Cos(phi), sp = Math.Sin(phi);
        double l1 = a * cp * cp + b * sp * cp + c * sp * sp;          // along phi
        double l2 = a * sp * sp - b * sp * cp + c * cp * cp;          // along phi + π/2
        double r1 = -f0 / l1, r2 = -f0 / l2;
        if (!(r1 > 0) || !(r2 > 0)) return null;
        double s1 = Math.Sqrt(r1), s2 = Math.Sqrt(r2);
        if (s1 < s2) { (s1, s2) = (s2, s1); phi += Math.PI / 2; }
        while (phi > Math.PI / 2) phi -= Math.PI;
        while (phi <= -Math.PI / 2) phi += Math.PI;
        return new Ellipse(x0, y0, s1, s2, phi);
    }

    /// <summary>
    /// Boundary points of the largest connected component of class <paramref name="cls"/> in a (H, W) label map, at
    /// the midpoints of the pixel edges between the region and the outside (sub-pixel, so a rasterised ellipse's fit is
    /// not biased half a pixel inward). Empty when the class is absent.
    /// </summary>
    public static List<(double X, double Y)> BoundaryPoints(byte[] labels, int height, int width, byte cls)
    {
        var binary = new byte[labels.Length];
        for (int i = 0; i < labels.Length; i++) binary[i] = labels[i] == cls ? (byte)1 : (byte)0;
        var region = ConnectedComponents.LargestComponent(binary, 1, height, width, 2, perSlice: true, fullConnectivity: true);
        var pts = new List<(double, double)>();
        bool In(int y, int x) => y >= 0 && y < height && x >= 0 && x < width && region[y * width + x] == 1;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                if (!In(y, x)) continue;
                if (!In(y, x - 1)) pts.Add((x - 0.5, y));
                if (!In(y, x + 1)) pts.Add((x + 0.5, y));
                if (!In(y - 1, x)) pts.Add((x, y - 0.5));
                if (!In(y + 1, x)) pts.Add((x, y + 0.5));
            }
        return pts;
    }

    /// <summary>
    /// The direct fit made robust to contour pieces that are not the ellipse's (a blob the head leaked into, an echo
    /// that touches it). A contour whose plain fit has every point within <paramref name="tolerance"/> pixels keeps it
    /// (a rasterised ellipse's edge midpoints are within ~0.7 px). Otherwise RANSAC: <paramref name="samples"/> direct
    /// fits of 6 contour points (seeded, so deterministic), the one with the most points within tolerance wins, and the
    /// result is the direct fit of its inliers. Trimming the plain fit's worst points does not work here: a large blob
    /// bends the whole fit, so the good points on the far side get trimmed too. Where no sample explains at least half
    /// of the contour the plain fit is returned. Distance: the radial approximation |r − 1|·√(A·B).
    /// </summary>
    public static Ellipse? FitRobust(IReadOnlyList<(double X, double Y)> points, double tolerance = 1.5, int samples = 300, int seed = 12345)
    {
        var plain = Fit(points);
        if (plain is null) return null;
        int n = points.Count;
        int Inliers(Ellipse e, List<(double X, double Y)>? into)
        {
            double scale = Math.Sqrt(e.A * e.B), cos = Math.Cos(e.Angle), sin = Math.Sin(e.Angle); int count = 0;
            foreach (var p in points)
                if (Math.Abs(e.Radius(p.X, p.Y, cos, sin) - 1) * scale <= tolerance) { count++; into?.Add(p); }
            return count;
        }
        if (Inliers(plain, null) == n) return plain;
        var rng = new Random(seed);
        var sample = new (double X, double Y)[6];
        Ellipse? best = null; int bestCount = 0;
        for (int s = 0; s < samples; s++)
        {
            for (int i = 0; i < 6; i++) sample[i] = points[rng.Next(n)];
            var e = Fit(sample);
            if (e is null || double.IsNaN(e.A) || e.A <= 0 || e.B <= 0) continue;
            int c = Inliers(e, null);
            if (c > bestCount) { best = e; bestCount = c; }
        }
        if (best is null || bestCount < n / 2) return plain;
        var inliers = new List<(double X, double Y)>(bestCount);
        Inliers(best, inliers);
        return Fit(inliers) ?? plain;
    }

    /// <summary>The ellipse fitted (robustly, <see cref="FitRobust"/>) to the boundary of class <paramref name="cls"/>'s
    /// largest component; null when absent.</summary>
    public static Ellipse? FromMask(byte[] labels, int height, int width, byte cls = 1) => FitRobust(BoundaryPoints(labels, height, width, cls));

    /// <summary>Head circumference in mm: the fitted ellipse's Ramanujan perimeter times the (isotropic) pixel size.</summary>
    public static double? HeadCircumferenceMm(byte[] labels, int height, int width, double pixelSizeMm, byte cls = 1) =>
        FromMask(labels, height, width, cls)?.Perimeter * pixelSizeMm;
}
