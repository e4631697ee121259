namespace SemiSeg.Evaluation;

/// <summary>How surface distances are computed.</summary>
public enum MetricMode
{
    /// <summary>medpy.metric.binary as the SSMIS literature calls it: voxel units (no spacing), HD95 = 95th percentile of
    /// both directed surface-distance sets concatenated, ASD = mean directed distance prediction → reference.</summary>
    Medpy,
    /// <summary>Spacing-aware and symmetric (mm; MONAI / PyMIC convention): HD95 = max of the two directed 95th
    /// percentiles, ASD = ASSD, the mean of both directed distance sets together.</summary>
    Spacing,
}

/// <summary>What a metric is when the prediction or the reference of a class is empty. Never silently 0: the policy is
/// part of every report.</summary>
public enum EmptyPolicy
{
    /// <summary>Undefined values (HD95/ASD with an empty side; Dice/Jaccard when both are empty) are NaN, left out of the
    /// means, and counted in the report.</summary>
    Exclude,
    /// <summary>SSL4MIS validation / BCP / SS-Net behaviour: every undefined value is 0 (this rewards missing a structure).</summary>
    Zero,
    /// <summary>Undefined distances take the worst possible value (the volume's diagonal, in the mode's units); Dice and
    /// Jaccard are 1 when both sides are empty (a correct "absent").</summary>
    Worst,
}

public enum EmptyStatus { None, PredictionEmpty, ReferenceEmpty, BothEmpty }

public sealed record ClassMetrics(double Dice, double Jaccard, double Hd95, double Asd, EmptyStatus Empty);

public sealed record CaseMetrics(string Case, IReadOnlyList<ClassMetrics> Classes)
{
    /// <summary>The spacing (z, y, x, mm) distances were measured with; null in medpy mode (voxels).</summary>
    public double[]? Spacing { get; init; }
    /// <summary>Where <see cref="Spacing"/> came from: "--spacing", the file's header, the dataset's table.</summary>
    public string? SpacingSource { get; init; }
    /// <summary>The mask file scored (predictions from files).</summary>
    public string? Prediction { get; init; }
    /// <summary>How the mask's voxel grid was matched to the reference's (predictions from files).</summary>
    public string? Geometry { get; init; }
}

/// <summary>A case that could not be scored, with the file and the reason.</summary>
public sealed record EvaluationFailure(string Case, string? File, string Reason);

public static class SegmentationMetrics
{
    /// <summary>Per-class metrics (classes 1..numClasses−1) of one case; masks are (D, H, W) label maps, x fastest.</summary>
    public static CaseMetrics Evaluate(string caseName, byte[] prediction, byte[] reference, int d, int h, int w, int numClasses,
        MetricMode mode = MetricMode.Medpy, EmptyPolicy policy = EmptyPolicy.Exclude, double[]? spacing = null)
    {
        if (prediction.Length != reference.Length || prediction.Length != d * h * w)
            throw new ArgumentException($"{caseName}: prediction ({prediction.Length}) and reference ({reference.Length}) sizes differ from {d}x{h}x{w}");
        var result = new List<ClassMetrics>();
        for (int c = 1; c < numClasses; c++)
        {
            var p = new bool[prediction.Length]; var r = new bool[reference.Length];
            for (int i = 0; i < p.Length; i++) { p[i] = prediction[i] == c; r[i] = reference[i] == c; }
            result.Add(Binary(p, r, d, h, w, mode, policy, spacing));
        }
        return new CaseMetrics(caseName, result);
    }

    public static ClassMetrics Binary(bool[] pred, bool[] refm, int d, int h, int w, MetricMode mode, EmptyPolicy policy, double[]? spacing)
    {
        var sp = mode == MetricMode.Medpy ? new[] { 1.0, 1.0, 1.0 } : (spacing ?? new[] { 1.0, 1.0, 1.0 });
        long np = 0, nr = 0, inter = 0;
        for (int i = 0; i < pred.Length; i++) { if (pred[i]) np++; if (refm[i]) nr++; if (pred[i] && refm[i]) inter++; }
        var status = (np == 0, nr == 0) switch
        {
            (true, true) => EmptyStatus.BothEmpty,
            (true, false) => EmptyStatus.PredictionEmpty,
            (false, true) => EmptyStatus.ReferenceEmpty,
            _ => EmptyStatus.None,
        };
        double worst = Math.Sqrt(Math.Pow((d - 1) * sp[0], 2) + Math.Pow((h - 1) * sp[1], 2) + Math.Pow((w - 1) * sp[2], 2));
        double undefinedDistance = policy switch { EmptyPolicy.Zero => 0, EmptyPolicy.Worst => worst, _ => double.NaN };
        if (status == EmptyStatus.BothEmpty)
        {
            double overlap = policy switch { EmptyPolicy.Zero => 0, EmptyPolicy.Worst => 1, _ => double.NaN };
            double dist = policy == EmptyPolicy.Worst ? 0 : undefinedDistance;
            return new ClassMetrics(overlap, overlap, dist, dist, status);
        }
        double dice = 2.0 * inter / (np + nr);
        double jac = (double)inter / (np + nr - inter);
        if (status != EmptyStatus.None)
            return new ClassMetrics(dice, jac, undefinedDistance, undefinedDistance, status);
        var sp_ = SurfaceDistance.Surface(pred, d, h, w);
        var sr = SurfaceDistance.Surface(refm, d, h, w);
        var pToR = SurfaceDistance.Directed(sp_, SurfaceDistance.SquaredDistanceTo(sr, d, h, w, sp));
        var rToP = SurfaceDistance.Directed(sr, SurfaceDistance.SquaredDistanceTo(sp_, d, h, w, sp));
        double hd95, asd;
        if (mode == MetricMode.Medpy)
        {
            hd95 = SurfaceDistance.Percentile(pToR.Concat(rToP).ToArray(), 95);
            asd = pToR.Average();
        }
        else
        {
            hd95 = Math.Max(SurfaceDistance.Percentile(pToR, 95), SurfaceDistance.Percentile(rToP, 95));
            asd = pToR.Concat(rToP).Average();
        }
        return new ClassMetrics(dice, jac, hd95, asd, status);
    }
}
