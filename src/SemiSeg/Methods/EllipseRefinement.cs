using SemiSeg.Geometry;
using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// ERSR, Ellipse-constrained pseudo-label Refinement and Symmetric Regularization (Zhou et al., arXiv 2508.19815), for
/// fetal-head ultrasound. The paper's code is not public; these are the equations implemented here. Student S, EMA
/// teacher T (α 0.99); k = the ellipse class (the head; default the last class); x_u unlabeled, x_s = strong(x_u)
/// (colour jitter + blur), flip = horizontal mirror.
/// 1. Dual-scoring filter. M = largest component of argmax T(x_u) = k, M' = the same for flip(T(flip(x_u))).
///    Boundary consistency S_b = Dice between the 2-pixel boundary bands of M and M' (does the contour survive a
///    perturbation?). Contour regularity S_r = IoU(M, E) with E the filled ellipse fitted to M's boundary points:
///    the direct least-squares fit (Fitzgibbon; Halíř–Flusser's stable form) wrapped in RANSAC
///    (<see cref="EllipseFit.FitRobust"/>): when every boundary point lies within 1.5 px of the plain fit that fit is
///    used; otherwise 300 seeded 6-point direct fits, and the least-squares fit of the best one's inliers. The abstract
///    says "least-squares ellipses"; the robust wrapper is kept because the teacher's head masks leak into touching
///    echoes and a plain fit bends toward the leak (test RobustFitIgnoresABlobTheHeadLeakedInto: a touching blob pulls
///    the plain fit's perimeter more than 3 % off, the robust one stays within 1 %), so the ellipse and the refinement
///    built on it would follow the noise the refinement is meant to suppress. On a clean contour the two are the same
///    fit, and the final ellipse is always a least-squares fit (of the inliers).
///    An image's pseudo-label is kept when S_b ≥ τ_b and S_r ≥ τ_r, the thresholds being running means (momentum
///    <c>score_momentum</c> 0.99, its own parameter: until issue 19 it was tied to <c>ema_decay</c>, whose default it
///    keeps) of the batch-mean scores seen so far, floored at <c>min_score</c> 0.5: adaptive filtering that keeps the
///    better-than-usual pseudo-labels as the teacher improves. Filtered-out images get no L_pl and no L_mirror.
/// 2. Ellipse-constrained refinement of a kept pseudo-label, with r(x) the normalised elliptical radius of pixel x
///    (1 on E): q(x) = max(p_k(x), exp(−r²/2σ_c²)) · exp(−max(0, r − 1)²/2σ_o²), σ_c 0.5, σ_o 0.1 — pixels near the
///    centre are strengthened toward the head, head responses beyond the ellipse suppressed as noise. Refined label
///    ŷ = k where q &gt; 0.5, elsewhere the teacher's best other class; pixel weight w = |2q − 1| (ambiguous pixels count less).
/// 3. Symmetric multiple consistency: L_pl = ½(CE_w + Dice)(S(x_s), ŷ) on kept images (against pseudo-labels);
///    L_pert = mean (softmax S(x_s) − softmax T(x_u))² on all unlabeled images (across perturbed images);
///    L_mirror = mean (p_k − p_k∘R_E)² with R_E the reflection across E's major axis and p_k the student's head
///    probability on x_s, on kept images (across mirrored regions: the head is symmetric about its axis).
/// loss = ½(CE + Dice)(labeled) + λ(t)·(L_pl + L_pert + β·L_mirror), λ(t) = w·sigmoid_rampup(t // 150, rampup) (SSL4MIS),
/// w = <c>consistency</c> 1.0, β = <c>mirror_weight</c> 1.0.
/// Interpretations where the abstract is silent (there is no public code): the EMA teacher takes parameters only, with
/// the mean-teacher warm-up α = min(1 − 1/(t+1), 0.99); "original predictions" in the consistency against perturbed
/// images is read as the teacher's on x_u; the mirror term zero-pads where the reflection leaves the image (a head
/// cut by the border compares its reflected part against 0); the band width (2 px), σ_c, σ_o and the floor 0.5 are
/// SemiSeg's choices.
/// </summary>
public sealed class EllipseRefinementMethod : ISegmentationMethod
{
    readonly double _consistency, _rampup, _emaDecay, _scoreMomentum, _minScore, _sigmaC, _sigmaO, _mirrorWeight;
    readonly int _numClasses, _ellipseClass;

    public EllipseRefinementMethod(UNetConfig config, MethodSettings settings)
    {
        _numClasses = config.NumClasses;
        _ellipseClass = (int)settings.Long("ellipse_class", config.NumClasses - 1);
        if (_ellipseClass < 1 || _ellipseClass >= _numClasses) throw new ArgumentException($"ersr: ellipse_class {_ellipseClass} is not a foreground class (1..{_numClasses - 1})");
        _consistency = settings.Double("consistency", 1.0);
        _rampup = settings.Double("rampup", 200);
        _emaDecay = settings.Double("ema_decay", 0.99);
        _scoreMomentum = settings.Double("score_momentum", 0.99);
        if (!(_scoreMomentum >= 0 && _scoreMomentum < 1)) throw new ArgumentException($"ersr: score_momentum must be in [0, 1) (got {_scoreMomentum})");
        _minScore = settings.Double("min_score", 0.5);
        _sigmaC = settings.Double("sigma_centre", 0.5);
        _sigmaO = settings.Double("sigma_outside", 0.1);
        _mirrorWeight = settings.Double("mirror_weight", 1.0);
        Student = Segmenter2D.Create(config);
        Teacher = Ema.FrozenCopy(Student);
        Scores = new ScoreMemory();
    }

    public string Name => "ersr";
    public Segmenter2D Student { get; }
    public Segmenter2D Teacher { get; }
    /// <summary>Running means of the two scores (the adaptive thresholds), kept in checkpoints.</summary>
    public ScoreMemory Scores { get; }
    public Segmenter2D InferenceNetwork => Student;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Student };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Student, Teacher, Scores };

    /// <summary>The pseudo-labels of one batch: the kept images (index in the unlabeled part, fitted ellipse), the
    /// refined targets and pixel weights (N_u, H, W; meaningful on kept images only), and the batch-mean scores.</summary>
    public sealed record PseudoLabelBatch(IReadOnlyList<(int Index, Ellipse Ellipse)> Kept, Tensor Target, Tensor Weight, double MeanBoundary, double MeanRegularity);

    /// <summary>Step 1 and 2: scores each unlabeled image from the teacher's probabilities <paramref name="pt"/> and
    /// their flip-TTA counterpart <paramref name="ptMirror"/> (N_u, C, H, W), keeps those at or above the current
    /// adaptive thresholds (<see cref="Scores"/>, not updated here) and refines their pseudo-labels.</summary>
    public PseudoLabelBatch FilterAndRefine(Tensor pt, Tensor ptMirror)
    {
        using var noGrad = no_grad();
        int nu = (int)pt.shape[0], h = (int)pt.shape[2], w = (int)pt.shape[3], hw = h * w;
        var arg = ClassIndex.Of(pt).to_type(ScalarType.Byte).contiguous().cpu().data<byte>().ToArray();
        var argM = ClassIndex.Of(ptMirror).to_type(ScalarType.Byte).contiguous().cpu().data<byte>().ToArray();
        var pk = pt.select(1, _ellipseClass).contiguous().cpu().data<float>().ToArray();
        var targets = new long[nu * hw];
        var weights = new float[nu * hw];
        var others = ClassIndex.Of(pt.clone().index_fill_(1, tensor(new long[] { _ellipseClass }, device: pt.device), -1)).contiguous().cpu().data<long>().ToArray();
        double thresholdB = Scores.Threshold(0, _minScore), thresholdR = Scores.Threshold(1, _minScore);
        var sb = new double[nu]; var sr = new double[nu]; var fitted = new Ellipse?[nu];
        // the images are independent host work (components, ellipse fit, refinement): one per core
        Parallel.For(0, nu, i =>
        {
            var m = HeadMask(arg.AsSpan(i * hw, hw), h, w);
            var mm = HeadMask(argM.AsSpan(i * hw, hw), h, w);
            sb[i] = BoundaryConsistency(m, mm, h, w);
            sr[i] = ContourRegularity(m, h, w, out var e);
            if (e is null || sb[i] < thresholdB || sr[i] < thresholdR) return;
            fitted[i] = e;
            var q = Refine(pk.AsSpan(i * hw, hw), e, h, w, _sigmaC, _sigmaO);
            for (int p = 0; p < hw; p++)
            {
                targets[i * hw + p] = q[p] > 0.5f ? _ellipseClass : others[i * hw + p];
                weights[i * hw + p] = Math.Abs(2 * q[p] - 1);
            }
        });
        var kept = Enumerable.Range(0, nu).Where(i => fitted[i] is not null).Select(i => (i, fitted[i]!)).ToList();
        // summed in image order, as the sequential loop did
        double sumB = 0, sumR = 0;
        for (int i = 0; i < nu; i++) { sumB += sb[i]; sumR += sr[i]; }
        return new PseudoLabelBatch(kept, tensor(targets, new long[] { nu, h, w }, device: pt.device), tensor(weights, new long[] { nu, h, w }, device: pt.device), sumB / nu, sumR / nu);
    }

    /// <summary>Step 3 on the student's logits of the strong views <paramref name="su"/> (N_u, C, H, W): L_pert on every
    /// unlabeled image against the teacher's <paramref name="pt"/>; L_pl and L_mirror on the kept images only.
    /// Returns L_pert + L_pl + β·L_mirror and the terms for the log.</summary>
    public (Tensor loss, Dictionary<string, Tensor> terms) UnlabeledLoss(Tensor su, Tensor pt, PseudoLabelBatch batch)
    {
        int nu = (int)su.shape[0], h = (int)su.shape[2], w = (int)su.shape[3];
        var ps = functional.softmax(su, 1);
        var pert = functional.mse_loss(ps, pt);
        var terms = new Dictionary<string, Tensor> { ["pert"] = pert, ["kept"] = tensor((float)batch.Kept.Count / nu, device: CPU) };
        var loss = pert;
        if (batch.Kept.Count == 0) return (loss, terms);
        var idx = tensor(batch.Kept.Select(k => (long)k.Index).ToArray(), device: su.device);
        var sk = su.index_select(0, idx);
        var tk = batch.Target.index_select(0, idx); var wk = batch.Weight.index_select(0, idx);
        var pl = 0.5 * (SegmentationLosses.CrossEntropy(sk, tk, wk) + SegmentationLosses.Dice(functional.softmax(sk, 1), tk));
        var headProb = ps.index_select(0, idx).narrow(1, _ellipseClass, 1);
        var theta = tensor(batch.Kept.SelectMany(k => MirrorTheta(k.Ellipse, h, w)).ToArray(), new long[] { batch.Kept.Count, 2, 3 }, device: su.device);
        var grid = functional.affine_grid(theta, new long[] { batch.Kept.Count, 1, h, w }, align_corners: true);
        var mirrored = functional.grid_sample(headProb, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Zeros, align_corners: true);
        var mirror = functional.mse_loss(headProb, mirrored);
        terms["pl"] = pl; terms["mirror"] = mirror;
        return (loss + pl + _mirrorWeight * mirror, terms);
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long n = images.shape[0], nl = labeledCount, nu = n - nl;
        if (nu == 0)
        {
            var l = SegmentationLosses.CeDice(Student.forward(images), labels);
            return new MethodStep(l, new Dictionary<string, Tensor> { ["sup"] = l });
        }
        var rng = new Random(Seeds.Mix(context.Iteration, 0xE55));
        var xu = images.narrow(0, nl, nu);
        Tensor pt, xs;
        PseudoLabelBatch batch;
        using (no_grad())
        {
            pt = functional.softmax(Teacher.forward(xu), 1);
            var ptMirror = functional.softmax(Teacher.forward(xu.flip(3)), 1).flip(3);
            xs = Perturbations.Strong(xu, rng);
            batch = FilterAndRefine(pt, ptMirror);
            Scores.Update(batch.MeanBoundary, batch.MeanRegularity, _scoreMomentum);
        }
        var logits = Student.forward(cat(new[] { images.narrow(0, 0, nl), xs }, 0));
        var sup = SegmentationLosses.CeDice(logits.narrow(0, 0, nl), labels);
        var (unsup, terms) = UnlabeledLoss(logits.narrow(0, nl, nu), pt, batch);
        terms["sup"] = sup;
        terms["boundary"] = tensor((float)batch.MeanBoundary, device: CPU); terms["regularity"] = tensor((float)batch.MeanRegularity, device: CPU);
        double lambda = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
        return new MethodStep(sup + lambda * unsup, terms);
    }

    public void AfterOptimizerStep(TrainingContext context) => Ema.Update(Teacher, Student, Ema.WarmupAlpha(_emaDecay, context.Iteration));

    byte[] HeadMask(ReadOnlySpan<byte> argmax, int h, int w)
    {
        var m = new byte[h * w];
        for (int i = 0; i < m.Length; i++) m[i] = argmax[i] == _ellipseClass ? (byte)1 : (byte)0;
        return ConnectedComponents.LargestComponent(m, 1, h, w, 2, perSlice: true);
    }

    /// <summary>Dice between the boundary bands (pixels of the mask within <paramref name="band"/> pixels, chessboard
    /// distance, of its outside) of two binary masks; 1 when both are empty.</summary>
    public static double BoundaryConsistency(byte[] a, byte[] b, int h, int w, int band = 2)
    {
        var ba = Band(a, h, w, band); var bb = Band(b, h, w, band);
        int inter = 0, sa = 0, sb = 0;
        for (int i = 0; i < ba.Length; i++) { if (ba[i]) sa++; if (bb[i]) sb++; if (ba[i] && bb[i]) inter++; }
        return sa + sb == 0 ? 1.0 : 2.0 * inter / (sa + sb);
    }

    static bool[] Band(byte[] m, int h, int w, int r)
    {
        var band = new bool[m.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                if (m[y * w + x] == 0) continue;
                bool edge = false;
                for (int dy = -r; dy <= r && !edge; dy++)
                    for (int dx = -r; dx <= r && !edge; dx++)
                    {
                        int yy = y + dy, xx = x + dx;
                        edge = yy < 0 || yy >= h || xx < 0 || xx >= w || m[yy * w + xx] == 0;
                    }
                band[y * w + x] = edge;
            }
        return band;
    }

    /// <summary>IoU between a binary mask and the filled ellipse fitted to its boundary (0 when no ellipse fits).</summary>
    public static double ContourRegularity(byte[] mask, int h, int w, out Ellipse? ellipse)
    {
        ellipse = EllipseFit.FromMask(mask, h, w);
        if (ellipse is null) return 0;
        var e = ellipse.Rasterize(h, w);
        int inter = 0, union = 0;
        for (int i = 0; i < e.Length; i++)
        {
            bool a = mask[i] != 0, b = e[i] != 0;
            if (a && b) inter++;
            if (a || b) union++;
        }
        return union == 0 ? 0 : (double)inter / union;
    }

    /// <summary>q = max(p, exp(−r²/2σ_c²))·exp(−max(0, r−1)²/2σ_o²) for every pixel of a (H, W) head-probability map.</summary>
    public static float[] Refine(ReadOnlySpan<float> p, Ellipse e, int h, int w, double sigmaCentre, double sigmaOutside)
    {
        var q = new float[h * w];
        var radius = e.RadiusMap(h, w);
        for (int i = 0; i < q.Length; i++)
        {
            double r = radius[i], outside = Math.Max(0, r - 1);
            double v = Math.Max(p[i], Math.Exp(-r * r / (2 * sigmaCentre * sigmaCentre))) * Math.Exp(-outside * outside / (2 * sigmaOutside * sigmaOutside));
            q[i] = (float)v;
        }
        return q;
    }

    /// <summary>The 2×3 affine_grid matrix (normalised coordinates, align_corners) that samples an image at the mirror
    /// image of each pixel across the ellipse's major axis.</summary>
    public static float[] MirrorTheta(Ellipse e, int h, int w)
    {
        // pixel p = D/2·(n + 1) with D = diag(W−1, H−1); reflection p' = c + R(p − c), R = [[cos2θ, sin2θ], [sin2θ, −cos2θ]]
        double c2 = Math.Cos(2 * e.Angle), s2 = Math.Sin(2 * e.Angle), dx = w - 1, dy = h - 1;
        double a00 = c2, a01 = s2 * dy / dx, a10 = s2 * dx / dy, a11 = -c2;        // D⁻¹ R D
        double rcx = c2 * e.Cx + s2 * e.Cy, rcy = s2 * e.Cx - c2 * e.Cy;               // R c
        double b0 = 2 * (e.Cx - rcx) / dx + a00 + a01 - 1, b1 = 2 * (e.Cy - rcy) / dy + a10 + a11 - 1;
        return new[] { (float)a00, (float)a01, (float)b0, (float)a10, (float)a11, (float)b1 };
    }

    public void Dispose() { Student.Dispose(); Teacher.Dispose(); Scores.Dispose(); }
}

/// <summary>Running means of ERSR's two pseudo-label scores, the adaptive filter thresholds.</summary>
public sealed class ScoreMemory : Module
{
    public ScoreMemory() : base(nameof(ScoreMemory))
    {
        register_buffer("means", zeros(2, dtype: ScalarType.Float64));
        register_buffer("seen", zeros(1, dtype: ScalarType.Int64));
    }

    /// <summary>The threshold for score <paramref name="which"/> (0 boundary, 1 regularity): its running mean, floored.</summary>
    public double Threshold(int which, double floor) =>
        get_buffer("seen")!.item<long>() == 0 ? floor : Math.Max(floor, get_buffer("means")![which].item<double>());

    public void Update(double boundary, double regularity, double momentum)
    {
        using var noGrad = no_grad();
        var means = get_buffer("means")!; var seen = get_buffer("seen")!;
        var now = tensor(new[] { boundary, regularity }, device: means.device);
        if (seen.item<long>() == 0) means.copy_(now);
        else means.mul_(momentum).add_(now, alpha: 1 - momentum);
        seen.add_(1);
    }
}
