using SemiSeg.Losses;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// Mean Teacher (Tarvainen &amp; Valpola, NeurIPS 2017) as SSL4MIS train_mean_teacher_2D.py runs it: the teacher is an
/// EMA of the student's parameters (decay 0.99 with the 1 − 1/(t+1) warm-up); it sees the unlabeled images plus
/// Gaussian noise N(0, 0.1²) clamped to ±0.2; loss = 0.5·(CE + Dice) on labeled + λ(t)·mean((softmax_s − softmax_t)²)
/// on unlabeled, with λ(t) = 0.1·sigmoid_rampup(t // 150, 200) and no consistency before iteration 1000.
/// Deliberate differences: none in the defaults; every constant above is a parameter (consistency, rampup,
/// noise_std, noise_clamp, ema_decay, consistency_start, ema_buffers) so the same class also reproduces
/// ../shared/bench/peer_mt.py (constant weight, unclamped noise).
/// </summary>
public sealed class MeanTeacherMethod : ISegmentationMethod
{
    readonly double _consistency, _rampup, _noiseStd, _noiseClamp, _emaDecay;
    readonly long _consistencyStart;
    readonly bool _emaBuffers;

    public MeanTeacherMethod(UNetConfig config, MethodSettings settings)
    {
        _consistency = settings.Double("consistency", 0.1);
        _rampup = settings.Double("rampup", 200);
        _noiseStd = settings.Double("noise_std", 0.1);
        _noiseClamp = settings.Double("noise_clamp", 0.2);
        _emaDecay = settings.Double("ema_decay", 0.99);
        _consistencyStart = settings.Long("consistency_start", 1000);
        _emaBuffers = settings.Bool("ema_buffers", false);
        Student = Segmenter2D.Create(config);
        Teacher = Ema.FrozenCopy(Student);
    }

    public string Name => "mean-teacher";
    public Segmenter2D Student { get; }
    public Segmenter2D Teacher { get; }
    public Segmenter2D InferenceNetwork => Student;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Student };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Student, Teacher };

    public double ConsistencyWeight(long iteration) =>
        iteration < _consistencyStart ? 0.0 : Ramps.Ssl4misConsistency(_consistency, iteration, _rampup);

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long n = images.shape[0], nu = n - labeledCount;
        var logits = Student.forward(images);
        var probs = functional.softmax(logits, 1);
        var sup = SegmentationLosses.CeDiceWithProbs(logits.narrow(0, 0, labeledCount), probs.narrow(0, 0, labeledCount), labels);
        double w = ConsistencyWeight(context.Iteration);
        // Before the consistency starts (or without unlabeled images) the teacher's output would be multiplied by 0:
        // skip its forward pass. The teacher runs in train mode (batch statistics), so nothing it would have
        // accumulated is lost.
        if (nu == 0 || w == 0) return new MethodStep(sup, new Dictionary<string, Tensor> { ["sup"] = sup });
        Tensor teacherProbs;
        using (no_grad())
        {
            var xu = images.narrow(0, labeledCount, nu);
            teacherProbs = functional.softmax(Teacher.forward(Perturbations.GaussianNoise(xu, _noiseStd, _noiseClamp)), 1);
        }
        var cons = functional.mse_loss(probs.narrow(0, labeledCount, nu), teacherProbs);
        var loss = sup + w * cons;
        return new MethodStep(loss, new Dictionary<string, Tensor> { ["sup"] = sup, ["cons"] = cons });
    }

    public void AfterOptimizerStep(TrainingContext context) => Ema.Update(Teacher, Student, Ema.WarmupAlpha(_emaDecay, context.Iteration), _emaBuffers);

    public void Dispose() { Student.Dispose(); Teacher.Dispose(); }
}
