using SemiSeg.Data;
using SemiSeg.Inference;

namespace SemiSeg.Evaluation;

/// <summary>Scores predictions of labeled volumes: from an inferer (slice-wise or sliding-window) or from mask files.</summary>
public static class Evaluator
{
    /// <summary>Scores an inferer's predictions (slice-wise 2D or sliding-window 3D) on labeled volumes;
    /// <paramref name="load"/> reads a case (e.g. the LA's Z-first reader, or a cache).</summary>
    public static EvaluationReport Evaluate(IInferer inferer, IReadOnlyList<CaseRef> cases, IReadOnlyList<string> classNames, MetricMode mode, EmptyPolicy policy,
        double[]? spacingOverride = null, Action<CaseRef, Volume, byte[]>? onPrediction = null, Func<CaseRef, Volume>? load = null) =>
        Score(cases, inferer.NumClasses, classNames, mode, policy, spacingOverride, load, (c, vol) =>
        {
            var pred = inferer.Predict(vol);
            onPrediction?.Invoke(c, vol, pred);
            return new Prediction(pred);
        });

    static readonly string[] MaskSuffixes = { "_pred.nii.gz", "_pred.nii", ".nii.gz", ".nii", "_pred.h5", ".h5", "_pred.png", ".png", "_pred.mha", ".mha" };

    /// <summary>The mask file for a case in <paramref name="directory"/>: NAME_pred.nii.gz, NAME.nii.gz, .nii, .h5 (dataset
    /// <c>label</c>), .png or .mha (the FH-PS-AOP challenge's format), in that order of preference.</summary>
    public static string FindMask(string directory, string caseName)
    {
        foreach (var s in MaskSuffixes)
        {
            var p = Path.Combine(directory, caseName + s);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException($"no prediction for case '{caseName}' in '{directory}' (looked for {caseName}{{{string.Join(",", MaskSuffixes)}}})", Path.Combine(directory, caseName + MaskSuffixes[0]));
    }

    /// <summary>
    /// Scores mask files (for instance another toolkit's predictions) against the cases' labels. Each mask is read as
    /// its format says (NIfTI scl_slope/scl_inter applied) and put on its reference's voxel grid: where both files state
    /// a voxel-to-world matrix and they differ only by the order or direction of the axes, the mask is reordered onto
    /// the reference's grid (<see cref="VoxelGrid"/>); any other difference is refused. A case whose mask is missing,
    /// unreadable, of another shape or grid, or holds a class the dataset lacks is listed in
    /// <see cref="EvaluationReport.Failures"/> with the reason, and the other cases are still scored.
    /// </summary>
    public static EvaluationReport EvaluateMasks(string directory, IReadOnlyList<CaseRef> cases, int numClasses, IReadOnlyList<string> classNames,
        MetricMode mode, EmptyPolicy policy, double[]? spacingOverride = null, Action<CaseRef, Volume, byte[]>? onPrediction = null)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"prediction folder '{directory}' does not exist");
        return Score(cases, numClasses, classNames, mode, policy, spacingOverride, null, (c, vol) =>
        {
            string? path = null;
            try
            {
                path = FindMask(directory, c.Name);
                var (pred, d, h, w, affine) = VolumeIO.ReadLabelWithAffine(path);
                string geometry;
                if (affine is null || vol.Affine is null)
                {
                    if ((d, h, w) != (vol.Depth, vol.Height, vol.Width))
                        throw new InvalidDataException($"prediction '{path}' has shape {d}x{h}x{w}, the reference of '{c.Name}' has {vol.Depth}x{vol.Height}x{vol.Width}");
                    geometry = affine is null && vol.Affine is null ? "not checked: neither file states a voxel-to-world matrix (same shape)"
                        : $"not checked: the {(affine is null ? "prediction" : "reference")} states no voxel-to-world matrix (same shape)";
                }
                else
                {
                    var map = VoxelGrid.Match(affine, (d, h, w), path, vol.Affine, (vol.Depth, vol.Height, vol.Width), c.ImagePath);
                    pred = VoxelGrid.Apply(pred, (d, h, w), map, (vol.Depth, vol.Height, vol.Width));
                    geometry = map.IsIdentity ? "same grid" : $"reoriented onto the reference's grid: stored {VoxelGrid.AxisCodes(affine)}, reference {VoxelGrid.AxisCodes(vol.Affine)} ({map})";
                }
                foreach (var v in pred)
                    if (v >= numClasses) throw new InvalidDataException($"prediction '{path}': value {v} is out of range for {numClasses} classes");
                onPrediction?.Invoke(c, vol, pred);
                return new Prediction(pred, path, geometry);
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                throw new PredictionFailedException(path, e.Message, e);
            }
        });
    }

    /// <summary>A case's mask could not be scored (missing, unreadable, another grid): the case is listed as failed.</summary>
    sealed class PredictionFailedException(string? file, string message, Exception inner) : Exception(message, inner)
    {
        public string? File { get; } = file;
    }

    sealed record Prediction(byte[] Mask, string? File = null, string? Geometry = null);

    /// <summary>
    /// The voxel spacing (z, y, x, mm) distances of a case are measured with, and where it came from. medpy mode
    /// measures in voxels (null). Spacing mode: <paramref name="spacingOverride"/> (--spacing) when given, with a
    /// warning where the file states another; else the dataset's pixel-size table (HC18), else the file's header
    /// (NIfTI pixdim, MetaImage ElementSpacing); a file that states none (HDF5, PNG) without --spacing is refused,
    /// rather than reporting voxels labelled mm.
    /// </summary>
    public static (double[]? spacing, string? source, string? warning) SpacingFor(CaseRef c, Volume vol, MetricMode mode, double[]? spacingOverride)
    {
        if (mode == MetricMode.Medpy) return (null, null, null);
        (double[] sp, string src)? stated = c.PixelSizeMm is double px ? (new[] { 1.0, px, px }, "the dataset's pixel-size table")
            : vol.SpacingSource is string s ? (vol.Spacing, s) : null;
        if (spacingOverride is not null)
        {
            string? warning = null;
            if (stated is { } st)
            {
                // a 2D image's distances are in-plane: its z spacing plays no part
                bool differs = Enumerable.Range(vol.Depth == 1 ? 1 : 0, vol.Depth == 1 ? 2 : 3)
                    .Any(i => Math.Abs(st.sp[i] - spacingOverride[i]) > 1e-4 * Math.Max(st.sp[i], spacingOverride[i]));
                if (differs) warning = $"'{c.ImagePath}': --spacing {J(spacingOverride)} overrides the spacing {J(st.sp)} of {st.src}";
            }
            return (spacingOverride, "--spacing", warning);
        }
        if (stated is { } stt) return (stt.sp, stt.src, null);
        throw new InvalidDataException($"--mode spacing: '{c.ImagePath}' states no voxel spacing ({VolumeIO.FormatOf(c.ImagePath)} file), so distances would be in voxels, not mm; " +
            "give the spacing as --spacing z,y,x (mm), or use --mode medpy (distances in voxels)");
    }

    static string J(double[] v) => string.Join(",", v.Select(x => x.ToString("0.#####", System.Globalization.CultureInfo.InvariantCulture)));

    static EvaluationReport Score(IReadOnlyList<CaseRef> cases, int numClasses, IReadOnlyList<string> classNames, MetricMode mode, EmptyPolicy policy,
        double[]? spacingOverride, Func<CaseRef, Volume>? load, Func<CaseRef, Volume, Prediction> predict)
    {
        if (mode == MetricMode.Medpy && spacingOverride is not null)
            throw new ArgumentException("--spacing was given, but --mode medpy measures distances in voxels and would ignore it: add --mode spacing, or leave --spacing out");
        var results = new List<CaseMetrics>();
        var failures = new List<EvaluationFailure>();
        var warnings = new List<string>();
        using var gate = Runtime.FinalizerGuard.Enter();
        foreach (var c in cases)
        {
            Runtime.FinalizerGuard.SafePoint();
            if (c.LabelPath == null) throw new InvalidDataException($"'{c.ImagePath}': evaluation needs a label");
            var vol = load?.Invoke(c) ?? VolumeIO.Read(c);
            if (c.PixelSizeMm is double px) vol.Spacing = new[] { 1.0, px, px };
            var (spacing, source, warning) = SpacingFor(c, vol, mode, spacingOverride);
            if (warning is not null) warnings.Add(warning);
            vol.ValidateLabel(numClasses, c.LabelPath);
            Prediction pred;
            try { pred = predict(c, vol); }
            catch (PredictionFailedException e)
            {
                failures.Add(new EvaluationFailure(c.Name, e.File, e.Message));
                continue;
            }
            results.Add(SegmentationMetrics.Evaluate(c.Name, pred.Mask, vol.Label!, vol.Depth, vol.Height, vol.Width, numClasses, mode, policy, spacing)
                with { Spacing = spacing, SpacingSource = source, Prediction = pred.File, Geometry = pred.Geometry });
        }
        return new EvaluationReport(classNames, mode, policy, results) { Failures = failures, Warnings = warnings };
    }
}
