using SemiSeg.Geometry;
using System.Globalization;
using System.Text;
using SemiSeg.Data;

namespace SemiSeg.Evaluation;

/// <summary>
/// The angle of progression (AoP) of intrapartum transperineal ultrasound, as the FH-PS-AOP challenge (MICCAI 2023)
/// and the PSFHS data set measure it: the angle between the long axis of the pubic symphysis (PS) and the line from
/// the PS's inferior end tangent to the fetal head (FH) contour. What this follows is the challenge's evaluation script
/// (<c>evaluation.py</c> <c>cal_aop</c> and <c>ellipse.py</c> <c>drawline_AOD</c>, as published with the challenge):
/// <list type="number">
/// <item>an ellipse is fitted to the largest region of each structure (PS, FH);</item>
/// <item>the PS ellipse's major axis gives the two ends of the symphysis; the inferior end is the one with the larger
///   image x (the script takes the end at centre + a·(cos φ, sin φ) with the axis direction φ in [−90°, 90°), which is
///   the right-hand end; in these images the symphysis runs from upper left to its inferior end on the right);</item>
/// <item>from that end the tangent to the FH ellipse is taken: in the FH ellipse's own frame (x along its major axis
///   direction φ in [−90°, 90°), semi-axes a ≥ b) the tangent's slope is the root
///   k = (x₀y₀ − √(b²x₀² + a²y₀² − a²b²)) / (x₀² − a²) of the tangency condition (y₀ − k x₀)² = a²k² + b²;</item>
/// <item>AoP is the angle at the inferior end between the other end of the PS axis and the tangent point (degrees).</item>
/// </list>
/// Of the two tangents from the PS end, that root is the one touching the head's leading side, the larger angle: on
/// every ground-truth mask of the 100-image PSFHS subset the two agree (AoP 98°–142° there; the other tangent gives
/// 30°–50°), which the tests check.
/// Where this differs, and why: the ellipses are fitted with this toolkit's direct least-squares fit
/// (<see cref="EllipseFit.Fit"/>, Fitzgibbon) to the region's boundary edge midpoints, where the script uses OpenCV's
/// <c>fitEllipse</c> on the largest external contour simplified by <c>approxPolyDP</c> (1 px), so the two can differ by
/// a fraction of a degree; at x₀² = a² (a zero denominator the script dodges by moving the point one pixel) the root's
/// limit is taken; and where the angle is undefined (a structure missing, or the PS end inside the head's
/// ellipse so that no tangent exists) the result is null and reported as missing, where the script scores 0°.
/// </summary>
public static class AngleOfProgression
{
    /// <summary>The measurement's geometry: both ends of the PS axis, the tangent point on the FH ellipse, the angle.</summary>
    public sealed record Result(double Degrees, (double X, double Y) PsSuperior, (double X, double Y) PsInferior, (double X, double Y) Tangent);

    /// <summary>Direction of an ellipse's major axis normalised to [−π/2, π/2), as OpenCV's angle − 90° is.</summary>
    static double AxisDirection(Ellipse e) => e.Angle >= Math.PI / 2 ? e.Angle - Math.PI : e.Angle;

    /// <summary>AoP from the two fitted ellipses; null when no tangent exists (the PS end inside the head ellipse).</summary>
    public static Result? FromEllipses(Ellipse ps, Ellipse fh)
    {
        double phi = AxisDirection(ps), c = Math.Cos(phi), s = Math.Sin(phi);
        var superior = (X: ps.Cx - ps.A * c, Y: ps.Cy - ps.A * s);
        var inferior = (X: ps.Cx + ps.A * c, Y: ps.Cy + ps.A * s);
        // the inferior end in the FH ellipse's frame
        double psi = AxisDirection(fh), cf = Math.Cos(psi), sf = Math.Sin(psi), a = fh.A, b = fh.B;
        double dx = inferior.X - fh.Cx, dy = inferior.Y - fh.Cy;
        double x0 = dx * cf + dy * sf, y0 = -dx * sf + dy * cf;
        double disc = b * b * x0 * x0 + a * a * y0 * y0 - a * a * b * b;
        if (disc < 0) return null;
        double tx, ty;
        double den = x0 * x0 - a * a;
        if (Math.Abs(den) > 1e-9 * a * a)
        {
            double k = (x0 * y0 - Math.Sqrt(disc)) / den, m = y0 - k * x0;
            tx = -k * m * a * a / (b * b + a * a * k * k);
            ty = k * tx + m;
        }
        else if (x0 * y0 > 0)
        {
            // x0 = ±a, the root's limit is finite: the quadratic loses its k² term, −2x₀y₀k + y₀² − b² = 0
            double k = (y0 * y0 - b * b) / (2 * x0 * y0), m = y0 - k * x0;
            tx = -k * m * a * a / (b * b + a * a * k * k);
            ty = k * tx + m;
        }
        else
        {
            // x0 = ±a and the root's limit is the vertical tangent x = x0, touching at (x0, 0)
            tx = x0; ty = 0;
        }
        var tangent = (X: fh.Cx + tx * cf - ty * sf, Y: fh.Cy + tx * sf + ty * cf);
        double ux = superior.X - inferior.X, uy = superior.Y - inferior.Y, vx = tangent.X - inferior.X, vy = tangent.Y - inferior.Y;
        double nu = Math.Sqrt(ux * ux + uy * uy), nv = Math.Sqrt(vx * vx + vy * vy);
        if (nu == 0 || nv == 0) return null;
        double cos = Math.Clamp((ux * vx + uy * vy) / (nu * nv), -1, 1);
        return new Result(Math.Acos(cos) * 180 / Math.PI, superior, inferior, tangent);
    }

    /// <summary>AoP from a (H, W) label map with the PS and FH classes; null when either is absent or too small to
    /// fit, or no tangent exists.</summary>
    public static Result? FromMask(byte[] labels, int height, int width, byte psClass, byte fhClass)
    {
        var ps = EllipseFit.Fit(EllipseFit.BoundaryPoints(labels, height, width, psClass));
        var fh = EllipseFit.Fit(EllipseFit.BoundaryPoints(labels, height, width, fhClass));
        return ps is null || fh is null ? null : FromEllipses(ps, fh);
    }

    /// <summary>The PS and FH classes of a dataset: the classes whose names contain "symphysis" and "head"; null when
    /// it has not both.</summary>
    public static (byte Ps, byte Fh)? Classes(IReadOnlyList<string> classNames)
    {
        byte? ps = null, fh = null;
        for (int i = 1; i < classNames.Count; i++)
        {
            if (classNames[i].Contains("symphysis", StringComparison.OrdinalIgnoreCase)) ps ??= (byte)i;
            else if (classNames[i].Contains("head", StringComparison.OrdinalIgnoreCase)) fh ??= (byte)i;
        }
        return ps is byte p && fh is byte f ? (p, f) : null;
    }
}

/// <summary>One case's angle of progression in degrees from the reference and the predicted mask; null where undefined.</summary>
public sealed record AngleOfProgressionRow(string Case, double? ReferenceDeg, double? PredictedDeg)
{
    public double? AbsoluteDifferenceDeg => ReferenceDeg is double r && PredictedDeg is double p ? Math.Abs(p - r) : null;
}

/// <summary>The angle of progression (<see cref="AngleOfProgression"/>) for every evaluated case, from the predicted
/// and from the reference mask, with the mean absolute difference |ΔAoP| the challenge ranks by.</summary>
public sealed class AngleOfProgressionReport
{
    readonly List<AngleOfProgressionRow> _rows = new();
    readonly byte _ps, _fh;
    public AngleOfProgressionReport(byte psClass, byte fhClass) { _ps = psClass; _fh = fhClass; }
    public IReadOnlyList<AngleOfProgressionRow> Rows => _rows;

    public void Add(CaseRef c, Volume vol, byte[] prediction)
    {
        if (vol.Depth != 1) throw new InvalidDataException($"'{c.Name}': the angle of progression is measured on 2D images, this one has {vol.Depth} planes");
        double? Measure(byte[] m) => AngleOfProgression.FromMask(m, vol.Height, vol.Width, _ps, _fh)?.Degrees;
        _rows.Add(new AngleOfProgressionRow(c.Name, vol.Label is null ? null : Measure(vol.Label), Measure(prediction)));
    }

    public double MeanAbsoluteDifferenceDeg => Mean(_rows.Select(r => r.AbsoluteDifferenceDeg));
    public double MeanDifferenceDeg => Mean(_rows.Select(r => r.PredictedDeg - r.ReferenceDeg));
    /// <summary>Cases whose prediction gives no angle (a structure missing, or no tangent).</summary>
    public int Missing => _rows.Count(r => r.PredictedDeg is null);
    /// <summary>Cases whose reference gives no angle.</summary>
    public int MissingReference => _rows.Count(r => r.ReferenceDeg is null);
    public int Measured => _rows.Count(r => r.AbsoluteDifferenceDeg is not null);

    static double Mean(IEnumerable<double?> v) => MeasurementFormat.Mean(v);

    public string ToCsv()
    {
        static string F(double? v) => MeasurementFormat.Csv(v);
        var sb = new StringBuilder("case,aop_reference_deg,aop_predicted_deg,abs_difference_deg\n");
        foreach (var r in _rows) sb.Append($"{r.Case},{F(r.ReferenceDeg)},{F(r.PredictedDeg)},{F(r.AbsoluteDifferenceDeg)}\n");
        return sb.ToString();
    }

    public string Summary()
    {
        var s = string.Create(CultureInfo.InvariantCulture,
            $"angle of progression: mean |ΔAoP| {MeanAbsoluteDifferenceDeg:0.00}°, mean ΔAoP {MeanDifferenceDeg:0.00}° over {Measured} cases");
        if (Missing > 0) s += $" ({Missing} predictions without an angle)";
        if (MissingReference > 0) s += $" ({MissingReference} references without an angle)";
        return s;
    }

    /// <summary>The summary and per-case values for metrics.json.</summary>
    public object ToJson()
    {
        static double? R(double? v) => MeasurementFormat.Json(v);
        return new
        {
            definition = "FH-PS-AOP challenge: angle at the pubic symphysis's inferior (right) axis end between its long axis and the tangent to the fetal head ellipse",
            units = "degrees",
            mean_abs_difference = R(MeanAbsoluteDifferenceDeg),
            mean_difference = R(MeanDifferenceDeg),
            cases = Measured,
            missing_predictions = Missing,
            missing_references = MissingReference,
            per_case = _rows.Select(r => new { @case = r.Case, reference = R(r.ReferenceDeg), predicted = R(r.PredictedDeg), abs_difference = R(r.AbsoluteDifferenceDeg) }).ToArray(),
        };
    }

    public void Write(string directory) => AtomicFile.WriteAllText(Path.Combine(directory, "aop.csv"), ToCsv());
}
