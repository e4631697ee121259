using SemiSeg.Data;
using SemiSeg.Models;
using SemiSeg.Training;

namespace SemiSeg.Evaluation;

/// <summary>Scores predictions of labeled volumes: from a network (slice-wise inference) or from mask files.</summary>
public static class Evaluator
{
    public static EvaluationReport Evaluate(UNet2D net, IReadOnlyList<CaseRef> cases, int patchH, int patchW, bool linearResize,
        IReadOnlyList<string> classNames, MetricMode mode, EmptyPolicy policy, double[]? spacingOverride = null,
        Action<CaseRef, Volume, byte[]>? onPrediction = null, Func<CaseRef, Volume>? load = null, bool largestComponent = false) =>
        Evaluate(net, net.Config.NumClasses, cases, patchH, patchW, linearResize, classNames, mode, policy, spacingOverride, onPrediction, load, largestComponent);

    /// <summary>Slice-wise scoring of any 2D network (e.g. a method's <see cref="SoftmaxEnsemble"/>) with
    /// <paramref name="numClasses"/> outputs.</summary>
    public static EvaluationReport Evaluate(TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> net, int numClasses,
        IReadOnlyList<CaseRef> cases, int patchH, int patchW, bool linearResize,
        IReadOnlyList<string> classNames, MetricMode mode, EmptyPolicy policy, double[]? spacingOverride = null,
        Action<CaseRef, Volume, byte[]>? onPrediction = null, Func<CaseRef, Volume>? load = null, bool largestComponent = false) =>
        Score(cases, numClasses, classNames, mode, policy, spacingOverride, load, (c, vol) =>
        {
            var pred = Inference.PredictVolume(net, vol, patchH, patchW, linearResize);
            if (largestComponent) pred = Inference.KeepLargestComponent(pred, vol, numClasses);
            onPrediction?.Invoke(c, vol, pred);
            return pred;
        });

    /// <summary>Scores a 3D network on volumes with sliding-window inference (<see cref="SlidingWindow"/>);
    /// <paramref name="load"/> reads a case as (D, H, W) (e.g. the LA's Z-first reader).</summary>
    public static EvaluationReport Evaluate3D(TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> net, int numClasses,
        IReadOnlyList<CaseRef> cases, (int d, int h, int w) patch, (int d, int h, int w) stride, IReadOnlyList<string> classNames,
        MetricMode mode, EmptyPolicy policy, double[]? spacingOverride = null, Action<CaseRef, Volume, byte[]>? onPrediction = null,
        Func<CaseRef, Volume>? load = null, bool largestComponent = false) =>
        Score(cases, numClasses, classNames, mode, policy, spacingOverride, load, (c, vol) =>
        {
            var pred = SlidingWindow.Predict(net, vol.Image, vol.Depth, vol.Height, vol.Width, numClasses, patch, stride, largestComponent).Labels;
            onPrediction?.Invoke(c, vol, pred);
            return pred;
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

    /// <summary>Scores mask files (for instance another toolkit's predictions) against the cases' labels.</summary>
    public static EvaluationReport EvaluateMasks(string directory, IReadOnlyList<CaseRef> cases, int numClasses, IReadOnlyList<string> classNames,
        MetricMode mode, EmptyPolicy policy, double[]? spacingOverride = null, Action<CaseRef, Volume, byte[]>? onPrediction = null)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"prediction folder '{directory}' does not exist");
        return Score(cases, numClasses, classNames, mode, policy, spacingOverride, null, (c, vol) =>
        {
            var path = FindMask(directory, c.Name);
            var (pred, d, h, w) = VolumeIO.ReadLabel(path);
            if ((d, h, w) != (vol.Depth, vol.Height, vol.Width))
                throw new InvalidDataException($"prediction '{path}' has shape {d}x{h}x{w}, the reference of '{c.Name}' has {vol.Depth}x{vol.Height}x{vol.Width}");
            foreach (var v in pred)
                if (v >= numClasses) throw new InvalidDataException($"prediction '{path}': value {v} is out of range for {numClasses} classes");
            onPrediction?.Invoke(c, vol, pred);
            return pred;
        });
    }

    static EvaluationReport Score(IReadOnlyList<CaseRef> cases, int numClasses, IReadOnlyList<string> classNames, MetricMode mode, EmptyPolicy policy,
        double[]? spacingOverride, Func<CaseRef, Volume>? load, Func<CaseRef, Volume, byte[]> predict)
    {
        var results = new List<CaseMetrics>();
        using var gate = Runtime.FinalizerGuard.Enter();
        foreach (var c in cases)
        {
            Runtime.FinalizerGuard.SafePoint();
            if (c.LabelPath == null) throw new InvalidDataException($"'{c.ImagePath}': evaluation needs a label");
            var vol = load?.Invoke(c) ?? VolumeIO.Read(c);
            if (c.PixelSizeMm is double px) vol.Spacing = new[] { 1.0, px, px };
            vol.ValidateLabel(numClasses, c.LabelPath);
            var pred = predict(c, vol);
            results.Add(SegmentationMetrics.Evaluate(c.Name, pred, vol.Label!, vol.Depth, vol.Height, vol.Width, numClasses, mode, policy,
                spacingOverride ?? vol.Spacing));
        }
        return new EvaluationReport(classNames, mode, policy, results);
    }
}
