using System.Buffers.Binary;
using System.Text.Json;
using SemiSeg.Data;
using SemiSeg.Evaluation;

namespace SemiSeg.Tests.Evaluation;

/// <summary>
/// The geometry tests: `evaluate --predictions` on masks as other toolkits write them, files made by nibabel
/// (Fixtures/nifti/make_evaluate_geometry_fixtures.py; nibabel also computed what each case must give). The same mask
/// stored with flipped or permuted axes and a matching affine scores Dice 1 after reorientation (and SemiSeg's
/// reoriented array is nibabel's as_reoriented array, voxel for voxel); a mask on another grid (voxel size, origin) is
/// refused by name with the difference, while the other cases are still scored; a uint8 mask with scl_slope reads as
/// its labels. Exact comparisons: masks are integers, Dice of identical masks is exactly 1.
/// </summary>
public class EvaluateGeometryTests
{
    static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "nifti", name);
    static readonly string[] Classes = { "background", "block", "bar", "corner" };

    static JsonElement Expected(string file)
    {
        var doc = JsonDocument.Parse(File.ReadAllText(Fixture("evaluate_geometry_expected.json")));
        return file == "reference" ? doc.RootElement.GetProperty("reference")
            : doc.RootElement.GetProperty("predictions").EnumerateArray().Single(c => c.GetProperty("file").GetString() == file);
    }

    static byte[] Bytes(JsonElement e) => e.EnumerateArray().Select(v => (byte)v.GetDouble()).ToArray();

    static CaseRef Case(string name) => new(name, Fixture("eval_image.nii.gz"), Fixture("eval_label.nii.gz"), Split.Test);

    /// <summary>A predictions folder: each fixture mask under a case name; "missing" has no mask.</summary>
    static (TempDir dir, List<CaseRef> cases) Predictions(params (string caseName, string? file)[] masks)
    {
        var t = new TempDir();
        Directory.CreateDirectory(t["pred"]);
        foreach (var (name, file) in masks)
            if (file is not null) File.Copy(Fixture(file), t[$"pred/{name}_pred.nii.gz"]);
        return (t, masks.Select(m => Case(m.caseName)).ToList());
    }

    [Theory]
    [InlineData("eval_pred_flipx.nii.gz", "LAS", "x reversed")]
    [InlineData("eval_pred_swapxy_flipz.nii.gz", "ARI", "x from y, y from x, z reversed")]
    public void AMaskStoredWithFlippedOrPermutedAxesIsReorientedAsNibabelDoesAndScoresDiceOne(string file, string axcodes, string how)
    {
        var e = Expected(file);
        Assert.Equal(axcodes, e.GetProperty("axcodes").GetString());
        var refLabel = Nifti.ReadLabel(Fixture("eval_label.nii.gz"), out var rh);
        var pred = VolumeIO.ReadLabelWithAffine(Fixture(file));
        // the bug this guards: the raw arrays (where they even have the reference's shape) do not match
        if (e.GetProperty("dice_raw_arrays").ValueKind != JsonValueKind.Null)
        {
            var raw = SegmentationMetrics.Evaluate("raw", pred.label, refLabel, rh.Nz, rh.Ny, rh.Nx, 4);
            Assert.Equal(e.GetProperty("dice_raw_arrays").EnumerateArray().Select(v => v.GetDouble()), raw.Classes.Select(c => c.Dice), new ToleranceComparer(1e-12));
            Assert.True(raw.Classes.Any(c => c.Dice < 1));
        }
        var refVol = VolumeIO.Read(Fixture("eval_image.nii.gz"), null);
        var map = VoxelGrid.Match(pred.affine!, (pred.D, pred.H, pred.W), file, refVol.Affine!, (refVol.Depth, refVol.Height, refVol.Width), "eval_image");
        Assert.Equal(how, map.ToString());
        Assert.Equal(Bytes(e.GetProperty("reoriented_x_fastest")), VoxelGrid.Apply(pred.label, (pred.D, pred.H, pred.W), map, (refVol.Depth, refVol.Height, refVol.Width)));

        var (t, cases) = Predictions(("c", file));
        using var _ = t;
        var report = Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Medpy, EmptyPolicy.Exclude);
        Assert.Empty(report.Failures);
        Assert.All(report.Cases.Single().Classes, c => Assert.Equal(1.0, c.Dice));
        Assert.All(report.Cases.Single().Classes, c => Assert.Equal(0.0, c.Hd95));
        Assert.Equal($"reoriented onto the reference's grid: stored {axcodes}, reference RAS ({how})", report.Cases.Single().Geometry);
    }

    [Fact]
    public void MasksOnAnotherGridAreRefusedByNameWhileTheGoodOnesAreScored()
    {
        Assert.False(Expected("eval_pred_spacing.nii.gz").GetProperty("same_grid_after_reorientation").GetBoolean());
        Assert.False(Expected("eval_pred_shifted.nii.gz").GetProperty("same_grid_after_reorientation").GetBoolean());
        var (t, cases) = Predictions(("flip", "eval_pred_flipx.nii.gz"), ("spacing", "eval_pred_spacing.nii.gz"), ("shifted", "eval_pred_shifted.nii.gz"),
            ("missing", null), ("scaled", "eval_pred_scaled.nii.gz"), ("broken", null));
        using var _ = t;
        File.WriteAllBytes(t["pred/broken_pred.nii.gz"], new byte[100]);
        var report = Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Medpy, EmptyPolicy.Exclude);

        Assert.Equal(new[] { "flip", "scaled" }, report.Cases.Select(c => c.Case));
        Assert.All(report.Cases.SelectMany(c => c.Classes), c => Assert.Equal(1.0, c.Dice));
        Assert.Equal(new[] { "spacing", "shifted", "missing", "broken" }, report.Failures.Select(f => f.Case));
        var spacing = report.Failures[0];
        Assert.Equal(t["pred/spacing_pred.nii.gz"], spacing.File);
        Assert.Contains("spacing_pred.nii.gz", spacing.Reason);
        Assert.Contains("eval_image.nii.gz", spacing.Reason);
        Assert.Contains("they differ in voxel size", spacing.Reason);
        Assert.Contains("of 1x1.25x2.5 mm", spacing.Reason);
        Assert.Contains("of 1.25x1.25x2.5 mm", spacing.Reason);
        var shifted = report.Failures[1];
        Assert.Contains("they differ in origin", shifted.Reason);
        Assert.Contains("up to 0.4 reference voxels off", shifted.Reason);
        Assert.Null(report.Failures[2].File);
        Assert.Contains("no prediction for case 'missing'", report.Failures[2].Reason);
        Assert.Contains("broken_pred.nii.gz", report.Failures[3].Reason);

        // metrics.json lists each failure with its file and reason; the means are over the scored cases
        using var json = JsonDocument.Parse(report.ToJson());
        var failed = json.RootElement.GetProperty("failed").EnumerateArray().ToList();
        Assert.Equal(4, failed.Count);
        Assert.Equal("shifted", failed[1].GetProperty("case").GetString());
        Assert.Equal(JsonValueKind.Null, failed[2].GetProperty("file").ValueKind);
        Assert.Equal(2, json.RootElement.GetProperty("cases").GetInt32());
        Assert.Equal("same grid", json.RootElement.GetProperty("per_case")[1].GetProperty("geometry").GetString());
    }

    [Fact]
    public void AUint8MaskWithSclSlopeReadsAsItsLabels()
    {
        var e = Expected("eval_pred_scaled.nii.gz");
        var stored = Bytes(e.GetProperty("stored_x_fastest"));
        Assert.Contains((byte)170, stored);   // the value the issue saw refused as "out of range"
        Assert.Equal(1.0 / 85, e.GetProperty("scl_slope").GetDouble(), 1e-9);
        Assert.True(e.GetProperty("max_abs_fdata_minus_round").GetDouble() > 0);  // float32 slope: 170/85 is not exactly 2
        Assert.Equal(Bytes(e.GetProperty("labels_x_fastest")), Nifti.ReadLabel(Fixture("eval_pred_scaled.nii.gz"), out _));
        Assert.Equal(Bytes(Expected("reference").GetProperty("labels_x_fastest")), Nifti.ReadLabel(Fixture("eval_pred_scaled.nii.gz"), out _));
    }

    /// <summary>The standard's rules, on a .nii whose header is patched: a non-zero slope scales (and a non-integer
    /// result is refused, naming the stored value and the scaling); a zero slope means no scaling, intercept included.</summary>
    [Fact]
    public void SclSlopeZeroMeansNoScalingAndNonIntegerScaledLabelsAreRefused()
    {
        using var t = new TempDir();
        var lab = new byte[] { 0, 1, 2, 3, 0, 1 };
        Nifti.Write(t["l.nii"], new Volume("l", 1, 2, 3, new float[6], lab), asLabel: true);
        void Patch(float slope, float inter)
        {
            var b = File.ReadAllBytes(t["l.nii"]);
            BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(112), slope);
            BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(116), inter);
            File.WriteAllBytes(t["l.nii"], b);
        }
        Patch(0, 5);
        Assert.Equal(lab, Nifti.ReadLabel(t["l.nii"], out _));
        Patch(2, 1);
        Assert.Equal(lab.Select(v => (byte)(2 * v + 1)).ToArray(), Nifti.ReadLabel(t["l.nii"], out _));
        Patch(0.5f, 0);
        var err = Assert.Throws<InvalidDataException>(() => Nifti.ReadLabel(t["l.nii"], out _));
        Assert.Contains("l.nii", err.Message);
        Assert.Contains("value 0.5 (stored 1 x scl_slope 0.5 + scl_inter 0)", err.Message);
    }

    [Fact]
    public void SpacingComesFromTheHeaderUnlessGivenAndIsRecordedPerCase()
    {
        var (t, cases) = Predictions(("a", "eval_pred_flipx.nii.gz"));
        using var dir = t;
        // spacing mode, no --spacing: the NIfTI header's pixdim (z, y, x) = (2.5, 1.25, 1.25)
        var fromHeader = Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Spacing, EmptyPolicy.Exclude);
        Assert.Equal(new[] { 2.5, 1.25, 1.25 }, fromHeader.Cases[0].Spacing);
        Assert.Equal("NIfTI header (pixdim)", fromHeader.Cases[0].SpacingSource);
        Assert.Empty(fromHeader.Warnings);
        using (var json = JsonDocument.Parse(fromHeader.ToJson()))
        {
            var c = json.RootElement.GetProperty("per_case")[0];
            Assert.Equal(new[] { 2.5, 1.25, 1.25 }, c.GetProperty("spacing_mm_zyx").EnumerateArray().Select(v => v.GetDouble()));
            Assert.Equal("NIfTI header (pixdim)", c.GetProperty("spacing_source").GetString());
            Assert.Equal("per case (spacing_mm_zyx): NIfTI header (pixdim)", json.RootElement.GetProperty("spacing").GetString());
        }
        // --spacing wins, with a warning naming the file and both spacings; the same value gives no warning
        var given = Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Spacing, EmptyPolicy.Exclude, new[] { 5.0, 1.0, 1.0 });
        Assert.Equal(new[] { 5.0, 1.0, 1.0 }, given.Cases[0].Spacing);
        Assert.Equal("--spacing", given.Cases[0].SpacingSource);
        var warning = Assert.Single(given.Warnings);
        Assert.Contains("eval_image.nii.gz", warning);
        Assert.Contains("--spacing 5,1,1 overrides the spacing 2.5,1.25,1.25 of NIfTI header (pixdim)", warning);
        Assert.Empty(Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Spacing, EmptyPolicy.Exclude, new[] { 2.5, 1.25, 1.25 }).Warnings);
        // --spacing with medpy mode (voxel units) would be ignored: refused
        var medpy = Assert.Throws<ArgumentException>(() => Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Medpy, EmptyPolicy.Exclude, new[] { 1.0, 1.0, 1.0 }));
        Assert.Contains("--mode medpy", medpy.Message);
        using var medpyJson = JsonDocument.Parse(Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Medpy, EmptyPolicy.Exclude).ToJson());
        Assert.StartsWith("not used", medpyJson.RootElement.GetProperty("spacing").GetString());
        Assert.False(medpyJson.RootElement.GetProperty("per_case")[0].TryGetProperty("spacing_mm_zyx", out _));
    }

    [Fact]
    public void SpacingModeOnFilesThatStateNoSpacingNeedsSpacing()
    {
        using var t = new TempDir();
        var lab = Nifti.ReadLabel(Fixture("eval_label.nii.gz"), out var h);
        var vol = new Volume("h", h.Nz, h.Ny, h.Nx, new float[lab.Length], lab);
        Hdf5.Write(t["h.h5"], vol);
        Directory.CreateDirectory(t["pred"]);
        Hdf5.Write(t["pred/h_pred.h5"], vol);
        var cases = new List<CaseRef> { new("h", t["h.h5"], t["h.h5"], Split.Test) };
        var err = Assert.Throws<InvalidDataException>(() => Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Spacing, EmptyPolicy.Exclude));
        Assert.Contains("h.h5", err.Message);
        Assert.Contains("states no voxel spacing", err.Message);
        Assert.Contains("--spacing", err.Message);
        var given = Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Spacing, EmptyPolicy.Exclude, new[] { 2.0, 1.0, 1.0 });
        Assert.Equal("--spacing", given.Cases[0].SpacingSource);
        Assert.Empty(given.Warnings);
        Assert.Equal("not checked: neither file states a voxel-to-world matrix (same shape)", given.Cases[0].Geometry);
        // medpy needs none
        Assert.Single(Evaluator.EvaluateMasks(t["pred"], cases, 4, Classes, MetricMode.Medpy, EmptyPolicy.Exclude).Cases);
    }

    sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= tolerance;
        public int GetHashCode(double v) => 0;
    }
}
