using SemiSeg.Data;
using SemiSeg.Models;
using SemiSeg.Training;

namespace SemiSeg.Evaluation;

/// <summary>Runs a network over labeled volumes and scores them.</summary>
public static class Evaluator
{
    public static EvaluationReport Evaluate(UNet2D net, IReadOnlyList<CaseRef> cases, int patchH, int patchW, bool linearResize,
        IReadOnlyList<string> classNames, MetricMode mode, EmptyPolicy policy, double[]? spacingOverride = null,
        Action<CaseRef, Volume, byte[]>? onPrediction = null, Func<CaseRef, Volume>? load = null)
    {
        var results = new List<CaseMetrics>();
        foreach (var c in cases)
        {
            if (c.LabelPath == null) throw new InvalidDataException($"'{c.ImagePath}': evaluation needs a label");
            var vol = load?.Invoke(c) ?? VolumeIO.Read(c.ImagePath, c.LabelPath, c.Name);
            vol.ValidateLabel(net.Config.NumClasses, c.LabelPath);
            var pred = Inference.PredictVolume(net, vol, patchH, patchW, linearResize);
            onPrediction?.Invoke(c, vol, pred);
            results.Add(SegmentationMetrics.Evaluate(c.Name, pred, vol.Label!, vol.Depth, vol.Height, vol.Width, net.Config.NumClasses, mode, policy,
                spacingOverride ?? vol.Spacing));
        }
        return new EvaluationReport(classNames, mode, policy, results);
    }
}
