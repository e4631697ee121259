using SemiSeg.Geometry;
using SemiSeg.Data;
using SemiSeg.Evaluation;

namespace SemiSeg.Tests.Geometry;

public class EllipseTests
{
    static double AngleDiff(double a, double b) => Math.Abs(Math.IEEERemainder(a - b, Math.PI));

    [Theory]
    [InlineData(50.0, 40.0, 30.0, 18.0, 0.5)]
    [InlineData(-12.5, 300.25, 120.0, 119.0, -1.2)]
    [InlineData(0.0, 0.0, 5.0, 1.0, 1.5707963267948966)]
    public void DirectFitRecoversExactEllipses(double cx, double cy, double a, double b, double angle)
    {
        var truth = new Ellipse(cx, cy, a, b, angle);
        var fit = EllipseFit.Fit(truth.Points(50).ToList())!;
        Assert.Equal(cx, fit.Cx, 6);
        Assert.Equal(cy, fit.Cy, 6);
        Assert.Equal(a, fit.A, 6);
        Assert.Equal(b, fit.B, 6);
        Assert.True(AngleDiff(angle, fit.Angle) < 1e-6, $"angle {fit.Angle} vs {angle}");
    }

    [Fact]
    public void FitOfARasterisedMaskIsWithinOnePercent()
    {
        var truth = new Ellipse(90.3, 61.7, 45, 33, 0.7);
        var mask = truth.Rasterize(128, 192);
        var fit = EllipseFit.FromMask(mask, 128, 192)!;
        Assert.True(Math.Abs(fit.Cx - truth.Cx) < 0.01 * truth.A && Math.Abs(fit.Cy - truth.Cy) < 0.01 * truth.A, $"centre {fit.Cx},{fit.Cy}");
        Assert.True(Math.Abs(fit.A / truth.A - 1) < 0.01 && Math.Abs(fit.B / truth.B - 1) < 0.01, $"axes {fit.A},{fit.B}");
        Assert.True(AngleDiff(fit.Angle, truth.Angle) < 0.01 * Math.PI, $"angle {fit.Angle}");
        Assert.True(Math.Abs(fit.Perimeter / truth.Perimeter - 1) < 0.01);
    }

    [Fact]
    public void RobustFitIgnoresABlobTheHeadLeakedInto()
    {
        // the failure seen on the phantom: the predicted head touches a bright distractor and the mask's contour
        // follows it; the plain fit's perimeter is pulled several percent off, the trimmed refit stays within 1%
        var truth = new Ellipse(90.3, 61.7, 40, 31, 0.4);
        var mask = truth.Rasterize(128, 192);
        var blob = new Ellipse(truth.Cx + 44, truth.Cy + 10, 16, 10, 1.1).Rasterize(128, 192);
        for (int i = 0; i < mask.Length; i++) mask[i] |= blob[i];
        var pts = EllipseFit.BoundaryPoints(mask, 128, 192, 1);
        var plain = EllipseFit.Fit(pts)!;
        var robust = EllipseFit.FromMask(mask, 128, 192)!;
        Assert.True(Math.Abs(plain.Perimeter / truth.Perimeter - 1) > 0.03, $"plain fit unexpectedly close: {plain.Perimeter} vs {truth.Perimeter}");
        Assert.True(Math.Abs(robust.Perimeter / truth.Perimeter - 1) < 0.01, $"robust perimeter {robust.Perimeter} vs {truth.Perimeter}");
        Assert.True(Math.Abs(robust.Cx - truth.Cx) < 0.4 && Math.Abs(robust.Cy - truth.Cy) < 0.4, $"centre {robust.Cx},{robust.Cy}");
        // on a clean ellipse the robust fit is the plain one
        var clean = EllipseFit.BoundaryPoints(truth.Rasterize(128, 192), 128, 192, 1);
        Assert.Equal(EllipseFit.Fit(clean)!.Perimeter, EllipseFit.FitRobust(clean)!.Perimeter, 9);
        Assert.Equal(robust, EllipseFit.FromMask(mask, 128, 192)); // deterministic
    }

    [Fact]
    public void RamanujanIsExactForACircleAndCloseForAnEllipse()
    {
        Assert.Equal(2 * Math.PI * 10, Ellipse.Ramanujan(10, 10), 9);
        // a = 2, b = 1: the perimeter is 9.688448220547675 (complete elliptic integral)
        Assert.Equal(9.688448220547675, Ellipse.Ramanujan(2, 1), 3);
    }

    [Fact]
    public void DegenerateInputsGiveNoEllipse()
    {
        Assert.Null(EllipseFit.Fit(new List<(double, double)> { (0, 0), (1, 1), (2, 2) }));
        Assert.Null(EllipseFit.Fit(Enumerable.Range(0, 20).Select(i => ((double)i, 2.0 * i)).ToList()));
        Assert.Null(EllipseFit.FromMask(new byte[100], 10, 10));
    }
}

public class Hc18Tests
{
    [Theory]
    [InlineData(40.3, 30.6, 20.0, 12.0, 0.3, 0.1, 4)]
    // runs off the left and bottom border, as 186_HC's outline does: a fit to part of the arc, less exact (the full
    // outline agrees to 0.1 px, the clipped one to half a pixel on a head this small)
    [InlineData(15.2, 48.4, 24.0, 17.0, -0.8, 0.5, 40)]
    public void TheFittedOutlineIsTheAnnotatedEllipseEvenWhenClipped(double cx, double cy, double a, double b, double angle, double tolerance, int pixels)
    {
        var truth = new Ellipse(cx, cy, a, b, angle);
        var outline = Hc18Dataset.DrawOutline(truth, 64, 80);
        var fit = Hc18Dataset.FitOutline(outline, 64, 80, "test.png");
        Assert.True(Math.Abs(fit.Cx - cx) < tolerance && Math.Abs(fit.Cy - cy) < tolerance, $"centre {fit.Cx},{fit.Cy}");
        Assert.True(Math.Abs(fit.A - a) < tolerance && Math.Abs(fit.B - b) < tolerance, $"axes {fit.A},{fit.B}");
        Assert.True(Math.Abs(fit.Perimeter - truth.Perimeter) < 2 * Math.PI * tolerance, $"perimeter {fit.Perimeter} vs {truth.Perimeter}");
        // the mask is the filled ellipse, up to a few pixels on the curve
        var mask = Hc18Dataset.FillOutline(outline, 64, 80, "test.png");
        var expected = truth.Rasterize(64, 80);
        int differ = mask.Zip(expected).Count(p => p.First != p.Second);
        Assert.True(differ <= pixels, $"{differ} pixels differ");
    }

    [Fact]
    public void AnOutlineTooSmallToFitIsOneClearError()
    {
        var e = Assert.Throws<InvalidDataException>(() => Hc18Dataset.FillOutline(new byte[64 * 80], 64, 80, "empty_Annotation.png"));
        Assert.Contains("empty_Annotation.png", e.Message);
        var line = new byte[64 * 80];
        for (int x = 0; x < 80; x++) line[20 * 80 + x] = 255;     // a straight line is no ellipse
        Assert.Throws<InvalidDataException>(() => Hc18Dataset.FillOutline(line, 64, 80, "line_Annotation.png"));
    }

    [Fact]
    public void TheTableReadsWithCrlfAndNoFinalNewline()
    {
        using var dir = new TempDir();
        var path = dir["training_set_pixel_size_and_HC.csv"];
        File.WriteAllText(path, "filename,pixel size(mm),head circumference (mm)\r\n000_HC.png,0.0691358041432,44.3\r\n001_HC.png,0.089658520051,56.81");
        var t = Hc18Dataset.ReadCsv(path);
        Assert.Equal(2, t.Count);
        Assert.Equal(0.0691358041432, t["000_HC.png"].PixelMm, 12);
        Assert.Equal(56.81, t["001_HC.png"].HcMm!.Value, 9);
        File.WriteAllText(path, "filename,pixel size(mm)\r\n000_HC.png,0.1\r\n");
        Assert.Null(Hc18Dataset.ReadCsv(path)["000_HC.png"].HcMm);
    }

    [Fact]
    public void PhantomWritesTheHc18LayoutAndTheLoaderSplitsBySubject()
    {
        using var dir = new TempDir();
        UltrasoundPhantom.WriteHc18(dir.Path, annotated: 30, unannotated: 4, height: 96, width: 144);
        Assert.True(Hc18Dataset.IsHc18(dir.Path));
        Assert.True(File.Exists(Path.Combine(dir.Path, "training_set", "008_2HC_Annotation.png")));
        var m = Hc18Dataset.Load(dir.Path, labeledCount: 3);
        Assert.Equal(2, m.NumClasses);
        Assert.Equal(3, m.Labeled.Count);
        Assert.Equal(30, m.Labeled.Count + m.Unlabeled.Count - 4 + m.Val.Count + m.Test.Count);
        Assert.Contains(m.Unlabeled, s => s.Case.Name.StartsWith("test_"));
        // 008_HC and 008_2HC are one subject: never split across train/val/test
        var all = m.Labeled.Concat(m.Unlabeled).Select(s => s.Case).Concat(m.Val).Concat(m.Test).ToList();
        Assert.Single(all.Where(c => c.Name.StartsWith("008_")).Select(c => c.Split).Distinct());
        // the filled annotation's fitted ellipse gives the table's head circumference within 1%
        var c0 = m.Test[0];
        var vol = VolumeIO.Read(c0.ImagePath, c0.LabelPath, c0.Name);
        Assert.Equal(new byte[] { 0, 1 }, vol.Label!.Distinct().OrderBy(v => v).ToArray());
        var hc = EllipseFit.HeadCircumferenceMm(vol.Label!, vol.Height, vol.Width, c0.PixelSizeMm!.Value)!.Value;
        Assert.True(Math.Abs(hc / c0.HeadCircumferenceMm!.Value - 1) < 0.01, $"{hc} vs {c0.HeadCircumferenceMm}");
        Assert.Throws<ArgumentException>(() => Hc18Dataset.Load(dir.Path, labeledCount: 1000));
    }

    [Fact]
    public void PhantomImagesLookLikeUltrasound()
    {
        var s = UltrasoundPhantom.Generate(3, 96, 144);
        float Mean(Func<int, bool> where) => (float)Enumerable.Range(0, s.Image.Length).Where(where).Average(i => s.Image[i]);
        // the head (with its skull echo) is brighter than the fluid around it, and the corners outside the fan are black
        Assert.True(Mean(i => s.Mask[i] == 1) > 1.5 * Mean(i => s.Mask[i] == 0 && s.Image[i] > 0));
        Assert.Equal(0f, s.Image[95 * 144]);
        Assert.NotEqual(UltrasoundPhantom.Generate(4, 96, 144).Head, s.Head);
    }

    [Fact]
    public void HeadCircumferenceReportComparesPredictionWithTheTable()
    {
        var e = new Ellipse(40, 30, 20, 12, 0.3);
        var mask = e.Rasterize(64, 80);
        var vol = new Volume("c", 1, 64, 80, new float[64 * 80], mask);
        var c = new CaseRef("c", "c.png", "c_Annotation.png", Split.Test) { PixelSizeMm = 0.5, HeadCircumferenceMm = e.Perimeter * 0.5 };
        var report = new HeadCircumferenceReport();
        report.Add(c, vol, mask, 1);
        report.Add(c with { Name = "empty" }, vol, new byte[64 * 80], 1);
        Assert.True(report.MeanAbsoluteDifferenceMm < 0.01 * e.Perimeter * 0.5);
        Assert.Equal(1, report.Missing);
        Assert.Contains("c,0.5,", report.ToCsv());
        Assert.Equal((byte)1, HeadCircumferenceReport.HeadClass(Hc18Dataset.ClassNames));
        Assert.Null(HeadCircumferenceReport.HeadClass(new[] { "background", "RV" }));
    }
}
