using SemiSeg.Losses;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods.Volume;

/// <summary>
/// Mean Teacher and UA-MT in 3D, after yulequan/UA-MT code/train_LA_meanteacher_certainty_unlabel.py (and its
/// uncertainty-free twin). The student sees the whole batch; the EMA teacher (decay 0.99 with the 1 − 1/(t+1)
/// warm-up, parameters only) sees the unlabeled patches plus noise clamp(N(0, 0.1²), ±0.2). Loss = 0.5·(CE + Dice) on
/// labeled + λ(t)·consistency, λ(t) = 0.1·sigmoid_rampup(t // 150, 40).
/// Mean Teacher: consistency = mean over unlabeled voxels and classes of (softmax_s − softmax_t)².
/// UA-MT: the teacher also runs <c>passes</c> (8) noisy forward passes; the uncertainty u = −Σ p̄ log(p̄ + 1e-6) of their
/// mean softmax masks the consistency to voxels with u &lt; (0.75 + 0.25·sigmoid_rampup(t, T))·ln 2 (ln C for C classes),
/// consistency = Σ mask·mse / (C·Σ mask + 1e-16) (the reference writes 2·Σ mask for its two classes).
/// Deliberate differences: Dice over all classes (see <see cref="VolumeSupervisedMethod"/>); the threshold uses ln C,
/// which is the reference's ln 2 for the LA's two classes. The teacher runs before the student (the reference runs it
/// after): its targets do not depend on the student, and so its forward no longer peaks on top of the student's saved
/// activations (peak memory at the LA patch: docs/results.md, issue 21). The random draws (teacher noise, student
/// dropout) come in the other order, so a run is not bit-identical to one from before that change.
/// </summary>
public sealed class VolumeMeanTeacherMethod : IVolumeMethod
{
    readonly bool _ua;
    readonly double _consistency, _rampup, _noiseStd, _noiseClamp, _emaDecay;
    readonly int _passes, _numClasses;

    public VolumeMeanTeacherMethod(VolumeMethodContext c, bool uncertaintyAware)
    {
        _ua = uncertaintyAware;
        var s = c.Settings;
        _consistency = s.Double("consistency", 0.1);
        _rampup = s.Double("rampup", 40);
        _noiseStd = s.Double("noise_std", 0.1);
        _noiseClamp = s.Double("noise_clamp", 0.2);
        _emaDecay = s.Double("ema_decay", 0.99);
        _passes = uncertaintyAware ? (int)s.Long("passes", 8) : 0;
        if (uncertaintyAware && _passes < 2) throw new ArgumentException($"ua-mt: passes must be at least 2 (got {_passes})");
        _numClasses = c.Network.NumClasses;
        Student = c.CreateNetwork();
        Teacher = Ema.FrozenCopy(Student, c.CreateNetwork);
    }

    public string Name => _ua ? "ua-mt" : "mean-teacher";
    public nn.Module<Tensor, Tensor> Student { get; }
    public nn.Module<Tensor, Tensor> Teacher { get; }
    public nn.Module<Tensor, Tensor> InferenceNetwork => Student;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Student };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Student, Teacher };

    Tensor Noisy(Tensor x) => Perturbations.GaussianNoise(x, _noiseStd, _noiseClamp);

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long nu = images.shape[0] - labeledCount;
        double w = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
        if (nu == 0 || w == 0)
        {
            var sup0 = SegmentationLosses.CeDice(Student.forward(images).narrow(0, 0, labeledCount), labels);
            return new MethodStep(sup0, new Dictionary<string, Tensor> { ["sup"] = sup0 });
        }
        var xu = images.narrow(0, labeledCount, nu);
        Tensor teacherProbs, mask;
        using (no_grad())
        {
            teacherProbs = functional.softmax(Teacher.forward(Noisy(xu)), 1);
            if (_ua)
            {
                // T noisy passes in pairs of the unlabeled batch, as the reference's repeat(2) loop
                var mean = zeros_like(teacherProbs);
                for (int i = 0; i < _passes / 2; i++)
                {
                    using var scope = NewDisposeScope();
                    var p = functional.softmax(Teacher.forward(Noisy(cat(new[] { xu, xu }, 0))), 1);
                    mean.add_(p.narrow(0, 0, nu)).add_(p.narrow(0, nu, nu));
                }
                mean.div_(2 * (_passes / 2));
                var uncertainty = -(mean * (mean + 1e-6).log()).sum(1, keepdim: true);
                double threshold = (0.75 + 0.25 * Ramps.Sigmoid(context.Iteration, context.MaxIterations)) * Math.Log(_numClasses);
                mask = uncertainty.lt(threshold).to_type(ScalarType.Float32);
            }
            else mask = ones(1, device: images.device);
        }
        var logits = Student.forward(images);
        var sup = SegmentationLosses.CeDice(logits.narrow(0, 0, labeledCount), labels);
        var mse = (functional.softmax(logits.narrow(0, labeledCount, nu), 1) - teacherProbs).pow(2);
        // mean over classes and (certain) voxels: the reference's torch.mean(softmax_mse) for MT, and its
        // Σ mask·mse / (2·Σ mask) for UA-MT, whose 2 is the LA's class count broadcast by the (B, 1, ...) mask
        var cons = _ua ? (mask * mse).sum() / (_numClasses * mask.sum() + 1e-16) : mse.mean();
        return new MethodStep(sup + w * cons, new Dictionary<string, Tensor> { ["sup"] = sup, ["cons"] = cons });
    }

    public void AfterOptimizerStep(TrainingContext context) => Ema.Update(Teacher, Student, Ema.WarmupAlpha(_emaDecay, context.Iteration));

    public void Dispose() { Student.Dispose(); Teacher.Dispose(); }
}
