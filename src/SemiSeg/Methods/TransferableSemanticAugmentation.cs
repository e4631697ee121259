using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// TransMedSeg, transferable semantic augmentation (Wang et al., arXiv 2505.14753). Its code is not public; this is the
/// derivation implemented here. Student S and EMA teacher T (α 0.99); f = the last decoder map (F = 16 channels), the
/// pixel classifier is the 3×3 output convolution with kernel taps W_{j,t} ∈ ℝ^F (class j, tap t) and bias b_j.
/// Memory: per class c, running (momentum 0.9) means μˢ_c, μᵗ_c and covariance Σᵗ_c of the student's and the teacher's
/// features over the pixels of that class (ground truth on labeled images, teacher pseudo-labels of confidence ≥ 0.95
/// on unlabeled ones), at most 4096 sampled pixels per class and batch.
/// Augmentation: a feature of class y is moved toward the teacher's semantics, f̃ = f + δ, δ ~ N(μᵗ_y − μˢ_y, λΣᵗ_y),
/// drawn independently at every pixel (so independently for each of the 3×3 taps that read it). The expected cross-entropy E_δ[CE(W·f̃ + b, y)] is bounded
/// (Jensen, ISDA, Wang et al. 2019) by the cross-entropy of the augmented logits
///   z̃_j = z_j + ΔW_{jy}ᵀ(μᵗ_y − μˢ_y) + ½λ·Σ_t ΔW_{jy,t}ᵀ Σᵗ_y ΔW_{jy,t},  ΔW_{jy} = Σ_t (W_{j,t} − W_{y,t}),
/// (the quadratic term sums over taps under per-pixel-independent noise), which is zero for j = y and grows for the
/// classes the augmented distribution would confuse with y: the closed-form upper bound of the expected
/// transferable cross-entropy. λ(t) = λ₀·t/T (λ₀ 0.5), as ISDA ramps it.
/// loss = ½(L_tsa + Dice)(labeled, ground truth: the augmented cross-entropy replaces the plain one, as in ISDA)
/// + w(t)·(L_tsa + Dice)(unlabeled strong view, teacher pseudo-labels of confidence ≥ 0.95, others ignored),
/// w(t) = <c>consistency</c>·sigmoid_rampup(t // 150, 200) with consistency = 0.1, the SSL4MIS value this header always
/// stated (the paper gives none). Until issue 18 the code defaulted to 1.0, 10× the stated weight; rows of
/// docs/results.md measured before then used 1.0 (<c>consistency=1</c> restores it).
/// Deliberate difference from the abstract's wording ("teacher features augmented toward student semantics"): with a
/// frozen EMA teacher that direction gives the student's encoder no gradient, so the student's features are augmented
/// toward the teacher's class statistics (cross-domain matching through the mean shift, intra-class structure through
/// the teacher's covariance); the closed form is the same.
/// </summary>
public sealed class TransferableSemanticAugmentationMethod : ISegmentationMethod
{
    readonly double _consistency, _rampup, _emaDecay, _lambda0, _threshold, _memoryMomentum;
    readonly int _numClasses, _sample;

    public TransferableSemanticAugmentationMethod(UNetConfig config, MethodSettings settings)
    {
        _consistency = settings.Double("consistency", 0.1);
        _rampup = settings.Double("rampup", 200);
        _emaDecay = settings.Double("ema_decay", 0.99);
        _lambda0 = settings.Double("lambda", 0.5);
        _threshold = settings.Double("conf_thresh", 0.95);
        _memoryMomentum = settings.Double("memory_momentum", 0.9);
        _sample = (int)settings.Long("pixels_per_class", 4096);
        _numClasses = config.NumClasses;
        Student = Segmenter2D.Create(config);
        Teacher = Ema.FrozenCopy(Student);
        Memory = new ClassStatistics(config.NumClasses, config.Features[0]);
    }

    public string Name => "transmedseg";
    public Segmenter2D Student { get; }
    public Segmenter2D Teacher { get; }
    public ClassStatistics Memory { get; }
    public Segmenter2D InferenceNetwork => Student;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Student };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Student, Teacher, Memory };

    /// <summary>
    /// The (C, C) offsets A[j, y] = ΔW_{jy}ᵀ Δμ_y + ½λ Σ_t ΔW_{jy,t}ᵀ Σ_y ΔW_{jy,t} for a (C, F, k, k) classifier kernel,
    /// (C, F) mean shifts and (C, F, F) covariances; A[y, y] = 0.
    /// </summary>
    public static Tensor AugmentationOffsets(Tensor kernel, Tensor meanShift, Tensor covariance, double lambda)
    {
        using var scope = NewDisposeScope();
        long c = kernel.shape[0], f = kernel.shape[1];
        var w = kernel.reshape(c, f, -1).permute(0, 2, 1);                 // (C, taps, F)
        var d = w.unsqueeze(1) - w.unsqueeze(0);                            // d[j, y] = W_j − W_y: (C, C, taps, F)
        var shift = einsum("jyf,yf->jy", d.sum(2), meanShift);
        var quad = einsum("jytf,yfg,jytg->jy", d, covariance, d);
        return (shift + 0.5 * lambda * quad).MoveToOuterDisposeScope();
    }

    /// <summary>The upper-bound loss: cross-entropy of logits (B, C, H, W) plus the offsets of each pixel's class
    /// (targets (B, H, W), <paramref name="ignoreIndex"/> skipped).</summary>
    public static Tensor AugmentedCrossEntropy(Tensor logits, Tensor targets, Tensor offsets, long ignoreIndex = 255)
    {
        using var scope = NewDisposeScope();
        var valid = targets.ne(ignoreIndex);
        if (!valid.any().item<bool>()) return zeros(1, dtype: logits.dtype, device: logits.device).squeeze().MoveToOuterDisposeScope();
        var y = targets.masked_fill(valid.logical_not(), 0);
        var perPixel = offsets.t().index_select(0, y.flatten()).reshape(y.shape[0], y.shape[1], y.shape[2], -1).permute(0, 3, 1, 2);
        var loss = functional.cross_entropy(logits + perPixel, targets, ignore_index: ignoreIndex);
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>w(t) = consistency·sigmoid_rampup(t // 150, rampup), the unlabeled term's weight.</summary>
    public double UnlabeledWeight(long iteration) => Ramps.Ssl4misConsistency(_consistency, iteration, _rampup);

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long n = images.shape[0], nl = labeledCount, nu = n - nl;
        var rng = new Random(Seeds.Mix(context.Iteration, 0x75A));
        Tensor targets, teacherFeatures, xs;
        using (no_grad())
        {
            var (tLogits, _, tFeat) = Teacher.ForwardWithFeatures(images);
            teacherFeatures = tFeat;
            var (pseudo, _) = PseudoLabels.Confident(functional.softmax(tLogits.narrow(0, nl, nu), 1), _threshold);
            targets = cat(new[] { labels, pseudo }, 0);
            xs = nu > 0 ? cat(new[] { images.narrow(0, 0, nl), Perturbations.Strong(images.narrow(0, nl, nu), rng) }, 0) : images;
        }
        var (logits, _, feat) = Student.ForwardWithFeatures(xs);
        Memory.Update(feat.detach(), teacherFeatures, targets, _memoryMomentum, _sample, rng);
        double lambda = _lambda0 * context.Iteration / Math.Max(1, context.MaxIterations);
        var offsets = AugmentationOffsets(Student.OutputConv.weight!, Memory.TeacherMean - Memory.StudentMean, Memory.TeacherCovariance, lambda);
        var ll = logits.narrow(0, 0, nl);
        var tsaL = AugmentedCrossEntropy(ll, labels, offsets);
        var sup = 0.5 * (tsaL + SegmentationLosses.Dice(functional.softmax(ll, 1), labels));
        var terms = new Dictionary<string, Tensor> { ["sup"] = sup, ["tsa_l"] = tsaL };
        var loss = sup;
        if (nu > 0)
        {
            var lu = logits.narrow(0, nl, nu); var tu = targets.narrow(0, nl, nu);
            var tsaU = AugmentedCrossEntropy(lu, tu, offsets);
            var dice = SegmentationLosses.Dice(functional.softmax(lu, 1), tu, ignoreIndex: 255);
            double w = UnlabeledWeight(context.Iteration);
            loss = loss + w * (tsaU + dice);
            terms["tsa_u"] = tsaU; terms["dice_u"] = dice;
        }
        return new MethodStep(loss, terms);
    }

    public void AfterOptimizerStep(TrainingContext context) => Ema.Update(Teacher, Student, Ema.WarmupAlpha(_emaDecay, context.Iteration));

    public void Dispose() { Student.Dispose(); Teacher.Dispose(); Memory.Dispose(); }
}

/// <summary>TransMedSeg's light memory: per-class running means of the student's and teacher's features and the
/// teacher's per-class covariance, as buffers (kept in checkpoints).</summary>
public sealed class ClassStatistics : Module
{
    public ClassStatistics(int classes, int features) : base(nameof(ClassStatistics))
    {
        register_buffer("student_mean", zeros(classes, features));
        register_buffer("teacher_mean", zeros(classes, features));
        register_buffer("teacher_cov", zeros(classes, features, features));
        register_buffer("seen", zeros(classes, dtype: ScalarType.Int64));
    }

    public Tensor StudentMean => get_buffer("student_mean")!;
    public Tensor TeacherMean => get_buffer("teacher_mean")!;
    public Tensor TeacherCovariance => get_buffer("teacher_cov")!;

    /// <summary>Updates each class present among the (B, H, W) targets (255 = ignored) from up to
    /// <paramref name="sample"/> of its pixels: first sighting copies, later ones blend with <paramref name="momentum"/>.</summary>
    public void Update(Tensor studentFeatures, Tensor teacherFeatures, Tensor targets, double momentum, int sample, Random rng)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long f = studentFeatures.shape[1];
        var fs = studentFeatures.permute(0, 2, 3, 1).reshape(-1, f);
        var ft = teacherFeatures.permute(0, 2, 3, 1).reshape(-1, f);
        var y = targets.flatten();
        var seen = get_buffer("seen")!;
        for (int c = 0; c < StudentMean.shape[0]; c++)
        {
            var idx = y.eq(c).nonzero().flatten();
            long count = idx.shape[0];
            if (count < 2) continue;
            if (count > sample)
            {
                var pick = Enumerable.Range(0, sample).Select(_ => rng.NextInt64(count)).ToArray();
                idx = idx.index_select(0, tensor(pick, device: idx.device));
            }
            var s = fs.index_select(0, idx); var t = ft.index_select(0, idx);
            var ms = s.mean(new long[] { 0 }); var mt = t.mean(new long[] { 0 });
            var centred = t - mt;
            var cov = centred.t().matmul(centred) / (centred.shape[0] - 1);
            bool first = seen[c].item<long>() == 0;
            double a = first ? 0 : momentum;
            StudentMean[c].mul_(a).add_(ms, alpha: 1 - a);
            TeacherMean[c].mul_(a).add_(mt, alpha: 1 - a);
            TeacherCovariance[c].mul_(a).add_(cov, alpha: 1 - a);
            seen[c].add_(1);
        }
    }
}
