using SemiSeg.Geometry;
using SemiSeg.Data;
using SemiSeg.Evaluation;

namespace SemiSeg.Tests.Evaluation;

public class AngleOfProgressionTests
{
    /// <summary>The largest angle at <paramref name="vertex"/> between the ray to <paramref name="towards"/> and a
    /// ray to a point of the ellipse (the far tangent), by sampling the ellipse densely.</summary>
    public static double LargestAngleToEllipse((double X, double Y) vertex, (double X, double Y) towards, Ellipse e)
    {
        double baseAngle = Math.Atan2(towards.Y - vertex.Y, towards.X - vertex.X);
        return e.Points(20000).Max(p => Math.Abs(Math.IEEERemainder(Math.Atan2(p.Y - vertex.Y, p.X - vertex.X) - baseAngle, 2 * Math.PI))) * 180 / Math.PI;
    }

    // A horizontal symphysis (axis along +x, inferior end P = (80, 40) on the right) and a circular head of radius r
    // whose centre is D from P in direction β (image y points down): the tangents from P leave at β ± asin(r/D), the
    // leading one at β − asin(r/D), so AoP = 180° − β + asin(r/D).
    [Theory]
    [InlineData(50.0, 80.0, 40.0)]     // tangents at 20° and 80°: AoP 160°
    [InlineData(60.0, 80.0, 40.0)]     // tangents at 30° and 90°: the other one is vertical (the script's zero denominator)
    [InlineData(75.0, 120.0, 50.0)]
    [InlineData(35.0, 70.0, 30.0)]
    public void ACircularHeadGivesTheAnalyticAngle(double betaDeg, double d, double r)
    {
        double beta = betaDeg * Math.PI / 180;
        var ps = new Ellipse(60, 40, 20, 6, 0);
        var fh = new Ellipse(80 + d * Math.Cos(beta), 40 + d * Math.Sin(beta), r, r, 0);
        var aop = AngleOfProgression.FromEllipses(ps, fh)!;
        double expected = 180 - betaDeg + Math.Asin(r / d) * 180 / Math.PI;
        Assert.Equal(expected, aop.Degrees, 6);
        Assert.Equal((80.0, 40.0), (Math.Round(aop.PsInferior.X, 9), Math.Round(aop.PsInferior.Y, 9)));
        Assert.Equal((40.0, 40.0), (Math.Round(aop.PsSuperior.X, 9), Math.Round(aop.PsSuperior.Y, 9)));
        Assert.Equal(1.0, fh.Radius(aop.Tangent.X, aop.Tangent.Y), 9);   // the tangent point is on the head
    }

    [Theory]
    [InlineData(-0.4, 0.3)]
    [InlineData(-0.2, -0.5)]
    [InlineData(-0.6, 1.2)]
    public void AnEllipticalHeadsTangentTouchesItAndIsTheLeadingOne(double psAngle, double fhAngle)
    {
        // the PSFHS picture: the symphysis upper left, sloping down to its inferior end, the head below right
        var ps = new Ellipse(95, 42, 33, 18, psAngle);
        var fh = new Ellipse(140, 140, 78, 64, fhAngle);
        var aop = AngleOfProgression.FromEllipses(ps, fh)!;
        Assert.Equal(1.0, fh.Radius(aop.Tangent.X, aop.Tangent.Y), 9);
        // tangent: the ellipse's gradient at the touching point is perpendicular to the line from the PS end
        double c = Math.Cos(fh.Angle), s = Math.Sin(fh.Angle), dx = aop.Tangent.X - fh.Cx, dy = aop.Tangent.Y - fh.Cy;
        double u = dx * c + dy * s, v = -dx * s + dy * c, gu = u / (fh.A * fh.A), gv = v / (fh.B * fh.B);
        double gx = gu * c - gv * s, gy = gu * s + gv * c, lx = aop.Tangent.X - aop.PsInferior.X, ly = aop.Tangent.Y - aop.PsInferior.Y;
        Assert.True(Math.Abs(gx * lx + gy * ly) / (Math.Sqrt(gx * gx + gy * gy) * Math.Sqrt(lx * lx + ly * ly)) < 1e-9);
        Assert.True(aop.PsInferior.X > aop.PsSuperior.X, "the inferior end is the right-hand one");
        Assert.Equal(LargestAngleToEllipse(aop.PsInferior, aop.PsSuperior, fh), aop.Degrees, 0.05);
    }

    [Fact]
    public void RasterisedMasksGiveTheEllipsesAngleAndMissingPartsGiveNone()
    {
        var ps = new Ellipse(95.3, 42.6, 33, 12, -0.3);
        var fh = new Ellipse(140.2, 150.7, 78, 64, 0.4);
        var exact = AngleOfProgression.FromEllipses(ps, fh)!.Degrees;
        var labels = fh.Rasterize(256, 256, 2);
        var psMask = ps.Rasterize(256, 256, 1);
        for (int i = 0; i < labels.Length; i++) if (psMask[i] != 0) labels[i] = 1;
        var measured = AngleOfProgression.FromMask(labels, 256, 256, 1, 2)!.Degrees;
        Assert.True(Math.Abs(measured - exact) < 1.0, $"{measured} vs {exact}");
        Assert.Null(AngleOfProgression.FromMask(fh.Rasterize(256, 256, 2), 256, 256, 1, 2));                   // no symphysis
        Assert.Null(AngleOfProgression.FromEllipses(new Ellipse(140, 150, 20, 6, 0), fh));                    // its end inside the head
        Assert.Equal(((byte)1, (byte)2), AngleOfProgression.Classes(PsfhDataset.ClassNames));
        Assert.Null(AngleOfProgression.Classes(Hc18Dataset.ClassNames));
    }

    [Fact]
    public void TheReportComparesPredictedWithReferenceAngles()
    {
        var ps = new Ellipse(95.3, 42.6, 33, 12, -0.3);
        var labels = new Ellipse(140.2, 150.7, 78, 64, 0.4).Rasterize(256, 256, 2);
        foreach (var (i, v) in ps.Rasterize(256, 256, 1).Select((v, i) => (i, v))) if (v != 0) labels[i] = 1;
        var moved = new Ellipse(150.2, 150.7, 78, 64, 0.4).Rasterize(256, 256, 2);   // the head 10 px further on
        foreach (var (i, v) in ps.Rasterize(256, 256, 1).Select((v, i) => (i, v))) if (v != 0) moved[i] = 1;
        var vol = new Volume("c", 1, 256, 256, new float[256 * 256], labels);
        var report = new AngleOfProgressionReport(1, 2);
        report.Add(new CaseRef("same", "i.mha", "l.mha", Split.Test), vol, labels);
        report.Add(new CaseRef("moved", "i.mha", "l.mha", Split.Test), vol, moved);
        report.Add(new CaseRef("empty", "i.mha", "l.mha", Split.Test), vol, new byte[256 * 256]);
        Assert.Equal(0.0, report.Rows[0].AbsoluteDifferenceDeg!.Value, 9);
        Assert.True(report.Rows[1].AbsoluteDifferenceDeg > 1, $"moving the head changes the angle: {report.Rows[1].AbsoluteDifferenceDeg}");
        Assert.Equal(report.Rows[1].AbsoluteDifferenceDeg!.Value / 2, report.MeanAbsoluteDifferenceDeg, 9);
        Assert.Equal(1, report.Missing);
        Assert.Contains("over 2 cases (1 predictions without an angle)", report.Summary());
        Assert.StartsWith("case,aop_reference_deg,aop_predicted_deg,abs_difference_deg\nsame,", report.ToCsv());
    }
}
