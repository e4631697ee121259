using SemiSeg.Geometry;
using System.Globalization;
using SemiSeg.Data;
using SemiSeg.Evaluation;
using Xunit.Abstractions;

namespace SemiSeg.Tests.Data;

/// <summary>The HC18 and PSFHS readers on the real subsets in ../shared/data (skipped, visibly, without them).</summary>
public class RealUltrasoundTests
{
    readonly ITestOutputHelper _out;
    public RealUltrasoundTests(ITestOutputHelper output) => _out = output;

    [SkippableFact]
    public void Hc18FittedEllipsesGiveTheTablesHeadCircumferenceOnEveryImage()
    {
        var root = SharedData.Hc18Root();
        Skip.If(root == null, SharedData.Hc18MissingMessage);
        var table = Hc18Dataset.ReadCsv(Path.Combine(root!, Hc18Dataset.TrainingCsv));
        var errors = new List<(string File, double Error)>();
        foreach (var (file, (px, hc)) in table)
        {
            var ann = Path.Combine(root!, "training_set", Path.GetFileNameWithoutExtension(file) + "_Annotation.png");
            var outline = Png.ReadMask(ann, out int h, out int w);
            var fitted = Hc18Dataset.FitOutline(outline, h, w, ann).Perimeter * px;
            errors.Add((file, Math.Abs(fitted - hc!.Value)));
        }
        var worst = errors.MaxBy(e => e.Error);
        _out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{errors.Count} images: |fitted HC - table HC| mean {errors.Average(e => e.Error):0.0000} mm, max {worst.Error:0.0000} mm ({worst.File})"));
        Assert.True(errors.Count == table.Count && errors.Count > 0);
        Assert.True(worst.Error < 0.1, $"{worst.File}: fitted HC is {worst.Error:0.000} mm off the table's");
    }

    [SkippableFact]
    public void Hc18LoadsAsReleasedIncludingTheClippedOutline()
    {
        var root = SharedData.Hc18Root();
        Skip.If(root == null, SharedData.Hc18MissingMessage);
        var m = Hc18Dataset.Load(root!, labeledCount: 10);
        Assert.Equal(10, m.Labeled.Count);
        var all = m.Labeled.Select(s => s.Case).Concat(m.Unlabeled.Select(s => s.Case)).Concat(m.Val).Concat(m.Test).ToList();
        Assert.Equal(Hc18Dataset.ReadCsv(Path.Combine(root!, Hc18Dataset.TrainingCsv)).Count, all.Count);
        // 186_HC's outline runs off the image: its mask is the filled ellipse, cut at the border, not a leaked flood fill
        var img = Path.Combine(root!, "training_set", "186_HC.png");
        var vol = VolumeIO.Read(img, Path.Combine(root!, "training_set", "186_HC_Annotation.png"), "186_HC");
        var lab = vol.Label!;
        int head = lab.Count(v => v == 1), border = 0;
        for (int y = 0; y < vol.Height; y++)
            for (int x = 0; x < vol.Width; x++)
                if ((y == 0 || x == 0 || y == vol.Height - 1 || x == vol.Width - 1) && lab[y * vol.Width + x] == 1) border++;
        Assert.True(border > 0, "the clipped head should reach the border");
        Assert.InRange(head, lab.Length / 20, lab.Length / 2);
    }

    [SkippableFact]
    public void PsfhsLoadsAsReleasedWithOneGreyPlaneAndThreeClasses()
    {
        var root = SharedData.PsfhRoot();
        Skip.If(root == null, SharedData.PsfhMissingMessage);
        var m = PsfhDataset.Load(root!, labeledCount: 10);
        Assert.Equal(new[] { "background", "pubic symphysis", "fetal head" }, m.ClassNames);
        var c = m.Test[0];
        Assert.Equal((3, 256, 256), VolumeIO.ReadShape(c.ImagePath));     // three planes on disk
        var notices = new List<string>();
        var previous = VolumeIO.Notice;
        VolumeIO.Notice = notices.Add;
        try
        {
            foreach (var k in m.Test.Concat(m.Val).Concat(m.Labeled.Select(s => s.Case)))
            {
                var vol = VolumeIO.Read(k);
                Assert.Equal((1, 256, 256), (vol.Depth, vol.Height, vol.Width));
                Assert.Equal(1.0, vol.Spacing[1]); Assert.Equal(1.0, vol.Spacing[2]);   // the header's ElementSpacing
                var present = vol.Label!.Distinct().OrderBy(v => v).ToArray();
                Assert.Equal(new byte[] { 0, 1, 2 }, present);
                Assert.InRange(vol.Image.Max(), 0.5f, 1f);
            }
            var unlabeled = VolumeIO.Read(m.Unlabeled[0].Case);
            Assert.Equal(1, unlabeled.Depth);
            Assert.Null(unlabeled.Label);
        }
        finally { VolumeIO.Notice = previous; }
        Assert.Empty(notices);   // the released planes are equal: no luminance conversion to report
    }

    [SkippableFact]
    public void PsfhsReferenceMasksGiveTheLeadingTangentsAngleOfProgression()
    {
        var root = SharedData.PsfhRoot();
        Skip.If(root == null, SharedData.PsfhMissingMessage);
        var m = PsfhDataset.Load(root!);
        var angles = new List<double>();
        foreach (var c in m.Test.Concat(m.Val).Concat(m.Labeled.Select(s => s.Case)))
        {
            var v = VolumeIO.Read(c);
            var r = AngleOfProgression.FromMask(v.Label!, v.Height, v.Width, 1, 2);
            Assert.True(r is not null, $"{c.Name}: no angle of progression from the reference mask");
            // the challenge's tangent is the one touching the head's leading side: the larger of the two angles
            var fh = EllipseFit.Fit(EllipseFit.BoundaryPoints(v.Label!, v.Height, v.Width, 2))!;
            Assert.Equal(SemiSeg.Tests.Evaluation.AngleOfProgressionTests.LargestAngleToEllipse(r!.PsInferior, r.PsSuperior, fh), r.Degrees, 0.5);
            angles.Add(r.Degrees);
        }
        _out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{angles.Count} reference masks: AoP {angles.Min():0.0}°..{angles.Max():0.0}°, mean {angles.Average():0.0}°"));
        Assert.Equal(m.Test.Count + m.Val.Count + m.Labeled.Count, angles.Count);
        Assert.All(angles, a => Assert.InRange(a, 60, 180));
    }
}
