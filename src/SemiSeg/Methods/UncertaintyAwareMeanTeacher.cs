using SemiSeg.Losses;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// UA-MT (Yu et al., MICCAI 2019) as SSL4MIS train_uncertainty_aware_mean_teacher_2D.py runs it: a Mean Teacher whose
/// consistency is restricted to pixels where the teacher is certain. Uncertainty = entropy of the mean softmax of
/// T = 8 teacher passes over noisy copies (noise N(0, 0.1²) clamped to ±0.2); mask = U &lt; (0.75 + 0.25·sigmoid_rampup(t,
/// max_iterations))·ln C; loss = 0.5·(CE + Dice) + λ(t)·Σ(mask·(softmax_s − softmax_t)²) / (2·Σmask + 1e-16), with
/// λ(t) = 0.1·sigmoid_rampup(t // 150, 200). EMA teacher of the parameters, decay 0.99.
/// Deliberate difference: the threshold uses ln C (the maximum entropy of C classes, as PyMIC does) instead of the 2D
/// script's ln 2. The threshold scales with the entropy's range: with 4 ACDC classes the entropy runs up to ln 4, and
/// ln 2 (half of it) is the stricter bar, excluding every pixel whose teacher hesitates between more than about two
/// classes; ln C is the more permissive one, which late in training lets the consistency reach all but the most
/// uncertain pixels. <c>ln2_threshold=true</c> restores the reference.
/// </summary>
public sealed class UncertaintyAwareMeanTeacherMethod : ISegmentationMethod
{
    readonly double _consistency, _rampup, _noiseStd, _noiseClamp, _emaDecay;
    readonly long _passes;
    readonly bool _ln2;

    public UncertaintyAwareMeanTeacherMethod(UNetConfig config, MethodSettings settings)
    {
        _consistency = settings.Double("consistency", 0.1);
        _rampup = settings.Double("rampup", 200);
        _noiseStd = settings.Double("noise_std", 0.1);
        _noiseClamp = settings.Double("noise_clamp", 0.2);
        _emaDecay = settings.Double("ema_decay", 0.99);
        _passes = settings.Long("passes", 8);
        _ln2 = settings.Bool("ln2_threshold", false);
        if (_passes < 2 || _passes % 2 != 0) throw new ArgumentException($"UA-MT: passes must be an even number >= 2 (got {_passes})");
        Student = Segmenter2D.Create(config);
        Teacher = Ema.FrozenCopy(Student);
        NumClasses = config.NumClasses;
    }

    public string Name => "ua-mt";
    public int NumClasses { get; }
    public Segmenter2D Student { get; }
    public Segmenter2D Teacher { get; }
    public Segmenter2D InferenceNetwork => Student;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Student };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Student, Teacher };

    /// <summary>The uncertainty threshold at iteration t.</summary>
    public double Threshold(long iteration, long maxIterations) =>
        (0.75 + 0.25 * Ramps.Sigmoid(iteration, maxIterations)) * Math.Log(_ln2 ? 2 : NumClasses);

    Tensor Noisy(Tensor x) => Perturbations.GaussianNoise(x, _noiseStd, _noiseClamp);

    /// <summary>Entropy of the mean teacher softmax over <see cref="_passes"/> noisy passes, (B, 1, H, W).</summary>
    public Tensor Uncertainty(Tensor unlabeled)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var twice = unlabeled.repeat(2, 1, 1, 1); // two noisy copies per forward, T/2 forwards, as the reference
        Tensor? sum = null;
        for (long i = 0; i < _passes / 2; i++)
        {
            var p = functional.softmax(Teacher.forward(Noisy(twice)), 1);
            var pair = p.narrow(0, 0, unlabeled.shape[0]) + p.narrow(0, unlabeled.shape[0], unlabeled.shape[0]);
            sum = sum is null ? pair : sum + pair;
        }
        var mean = sum! / _passes;
        return (-(mean * (mean + 1e-6).log()).sum(1, keepdim: true)).MoveToOuterDisposeScope();
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long nu = images.shape[0] - labeledCount;
        var logits = Student.forward(images);
        var probs = functional.softmax(logits, 1);
        var sup = SegmentationLosses.CeDiceWithProbs(logits.narrow(0, 0, labeledCount), probs.narrow(0, 0, labeledCount), labels);
        if (nu == 0) return new MethodStep(sup, new Dictionary<string, Tensor> { ["sup"] = sup });
        var xu = images.narrow(0, labeledCount, nu);
        Tensor teacherProbs;
        using (no_grad()) teacherProbs = functional.softmax(Teacher.forward(Noisy(xu)), 1);
        var uncertainty = Uncertainty(xu);
        var mask = uncertainty.lt(Threshold(context.Iteration, context.MaxIterations)).to_type(probs.dtype);
        var dist = (probs.narrow(0, labeledCount, nu) - teacherProbs).pow(2);
        var cons = (mask * dist).sum() / (2 * mask.sum() + 1e-16);
        double w = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
        var loss = sup + w * cons;
        return new MethodStep(loss, new Dictionary<string, Tensor> { ["sup"] = sup, ["cons"] = cons, ["certain"] = mask.mean() });
    }

    public void AfterOptimizerStep(TrainingContext context) => Ema.Update(Teacher, Student, Ema.WarmupAlpha(_emaDecay, context.Iteration));

    public void Dispose() { Student.Dispose(); Teacher.Dispose(); }
}
