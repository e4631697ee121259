using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp.Modules;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// C3S3, Complementary Competition and Contrastive Selection (He et al., ICME 2025, arXiv 2506.07368), after
/// Y-TARL/C3S3 train_LA.py / train_Pancreas.py, utils/ContrastiveLoss.py, utils/losses.py and test_util.py; in 2D:
/// network A ("vnet" in the reference) = the `--network` 2D network (the UNet by default), network B ("resnet") = the ResNet-encoder UNet, each with the
/// reference's per-pixel projector on its last decoder map (1×1 conv 16→16, PReLU, 1×1 conv 16→64). Both networks see
/// two views of the batch. Per network N, with CE and the foreground Dice on the labeled images of views 1 and 2:
/// <list type="bullet">
/// <item>Selection (complementary competition): S(N) = α·(CE₁ + CE₂) + (1−α)·(Dice₁ + Dice₂), α 0.5 (Pancreas; LA 0.8).
/// The network with the smaller S (ties: B, as `if v_loss_sum &lt; r_loss_sum`) is the good student this iteration.
/// S only selects; it is not trained on.</item>
/// <item>Supervised loss: (CE₁ + Dice₁ + CE₂ + Dice₂)/2. Dice is the reference's binary foreground Dice (squared
/// denominators, smooth 1e-5, over the labeled batch); with more than two classes, the mean of that Dice over the
/// foreground classes.</item>
/// <item>View consistency, weight <c>view_weight</c> 1, unramped, on the whole batch: mean(1 − cos(logits₁, logits₂))
/// with the cosine taken along the last spatial axis (the reference's `F.cosine_similarity(v1, v2, dim=-1)`).</item>
/// <item>Competition: the good student's unlabeled softmax of each view, sharpened (T 0.1) and detached, teaches the
/// other network by MSE (`softmax_mse_loss` compares probabilities), weighted λ(t) = 0.1·sigmoid_rampup(t // 150, 40).
/// Only the weaker network gets this term.</item>
/// <item>Outcome-driven contrastive learning (ODCL), ContrastiveLoss.forward for each of the pairs (A₁, B₁), (A₂, B₂),
/// (A₁, B₂), (A₂, B₁): s = cos(z_A, z_B) per pixel over the whole batch; I = both argmax foreground, U = either;
/// L = −mean log(e^{I·s/τ} / (Σ_all e^{(1−I)·s/τ} + e^{I·s/τ} + 1e-8)) − mean log(e^{(1−U)·s/τ} / (Σ_all e^{U·s/τ} +
/// e^{(1−U)·s/τ} + 1e-8)), τ 0.1, every pixel (the reference's GumbelTopK sampling is never called). With weight
/// <c>contrast_weight</c> 1 in both networks' losses.</item>
/// </list>
/// The reference back-propagates v_loss and r_loss separately into the two networks' optimizers; the competition
/// targets are detached, so that equals one step on v_loss + r_loss (the ODCL counted twice), which is the loss here.
/// Inference averages both networks' softmax (test_util.py `y = (y + y2)/2`): the inference module is their
/// <see cref="SoftmaxEnsemble"/>, used by validation, `evaluate` and `predict`; <c>inference=first</c> predicts with
/// network A alone.
/// Departures, and why:
/// <list type="bullet">
/// <item>2D networks (the reference is 3D; its 3D form is `--network vnet --method c3s3`,
/// <see cref="Volume.VolumeComplementaryCompetitionMethod"/>). Network B is SemiSeg's 2D ResUNet (two basic blocks per
/// scale, no dropout), not a ResNet-34 encoder.</item>
/// <item>The two views. The reference's LA/Pancreas loaders crop once and feed the same crop twice, so its views
/// differ only through dropout; the 2D ResUNet has no dropout, so identical views would make its consistency term
/// zero. The second view here is colour jitter + blur of the first (the paper's "Augmentation(X)" twice, same
/// geometry); <c>second_view=same</c> gives the code's identical views.</item>
/// <item>With more than two classes (ACDC) "foreground" in I and U is "any class but background" and the Dice averages
/// the foreground classes; with two classes both are the reference's.</item>
/// <item>One optimizer for both networks (the reference has one SGD each with the same settings: the same update).</item>
/// <item>No gradient checkpointing (it changes memory, not values).</item>
/// </list>
/// <c>form=former</c> restores SemiSeg's earlier design: training on S(A) + S(B) with the all-class Dice; view
/// consistency 1 − cos over classes of the unlabeled softmax, ramped with λ(t); InfoNCE on ≤ <c>anchors</c> sampled
/// pixels of I and Ū at <c>contrast_weight</c> (default 0.1 in that form) with a 16→32 BN-ReLU 32→32 projector;
/// prediction with network A.
/// </summary>
public sealed class ComplementaryCompetitionMethod : ISegmentationMethod
{
    readonly double _alpha, _temperature, _consistency, _rampup, _contrastTemp, _contrastWeight, _viewWeight;
    readonly int _anchors;
    readonly bool _former, _sameView, _ensemble;

    public ComplementaryCompetitionMethod(UNetConfig config, MethodSettings settings)
    {
        var form = settings.String("form", "reference");
        if (form is not ("reference" or "former")) throw new ArgumentException($"c3s3: form must be reference or former (got '{form}')");
        _former = form == "former";
        _alpha = settings.Double("alpha", 0.5);
        _temperature = settings.Double("sharpen_temp", 0.1);
        _consistency = settings.Double("consistency", 0.1);
        _rampup = settings.Double("rampup", 40);
        _contrastTemp = settings.Double("contrast_temp", 0.1);
        _contrastWeight = settings.Double("contrast_weight", _former ? 0.1 : 1.0);
        _viewWeight = _former ? 0 : settings.Double("view_weight", 1.0);
        _anchors = _former ? (int)settings.Long("anchors", 256) : 256;
        var view = settings.String("second_view", "strong");
        if (view is not ("strong" or "same")) throw new ArgumentException($"c3s3: second_view must be strong or same (got '{view}')");
        _sameView = view == "same";
        var inference = settings.String("inference", _former ? "first" : "ensemble");
        if (inference is not ("ensemble" or "first")) throw new ArgumentException($"c3s3: inference must be ensemble or first (got '{inference}')");
        _ensemble = inference == "ensemble";
        NetA = Segmenter2D.Create(config);
        NetB = new ResUNet2D(config);
        ProjA = _former ? FormerProjector(config.Features[0]) : Projector(config.Features[0]);
        ProjB = _former ? FormerProjector(config.Features[0]) : Projector(config.Features[0]);
        Ensemble = new SoftmaxEnsemble(new[] { Segmenter2D.Name(config.Kind), Segmenter2D.Name(Net2DKind.Resunet) }, new Module<Tensor, Tensor>[] { NetA, NetB });
    }

    /// <summary>The reference's projector: Conv(c→c, 1), PReLU, Conv(c→64, 1).</summary>
    public static Sequential Projector(long c, int dims = 2) => dims == 2
        ? Sequential(Conv2d(c, c, 1), PReLU(1, 0.25), Conv2d(c, 64, 1))
        : Sequential(Conv3d(c, c, 1), PReLU(1, 0.25), Conv3d(c, 64, 1));

    static Sequential FormerProjector(long c) => Sequential(Conv2d(c, 32, 1), Norms.BatchNorm2d(32), ReLU(), Conv2d(32, 32, 1));

    public string Name => "c3s3";
    // A and B, not 1 and 2 (Net1/Net2 name twin networks of one architecture): a heterogeneous pair, and the
    // header's subscripts 1 and 2 are views.
    public Segmenter2D NetA { get; }
    public ResUNet2D NetB { get; }
    public Sequential ProjA { get; }
    public Sequential ProjB { get; }
    /// <summary>Both networks' averaged softmax: what validation, evaluate and predict run (unless inference=first).</summary>
    public SoftmaxEnsemble Ensemble { get; }
    public Segmenter2D InferenceNetwork => NetA;
    Module ITrainableMethod.InferenceModule => _ensemble ? Ensemble : NetA;
    public IReadOnlyList<Module> TrainableModules => new Module[] { NetA, NetB, ProjA, ProjB };
    public IReadOnlyList<Module> StatefulModules => new Module[] { NetA, NetB, ProjA, ProjB };

    /// <summary>The reference's foreground Dice: 1 − (2Σpt + 1e-5)/(Σp² + Σt² + 1e-5) over the batch for each class but
    /// background, averaged (for two classes, dice_loss(soft[:, 1], label == 1)).</summary>
    public static Tensor ForegroundDice(Tensor probs, Tensor labels)
    {
        using var scope = NewDisposeScope();
        long c = probs.shape[1];
        Tensor? sum = null;
        for (long k = 1; k < c; k++)
        {
            var p = probs.select(1, k); var t = labels.eq(k).to_type(probs.dtype);
            var d = 1 - (2 * (p * t).sum() + 1e-5) / ((p * p).sum() + (t * t).sum() + 1e-5);
            sum = sum is null ? d : sum + d;
        }
        return (sum! / (c - 1)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// ContrastiveLoss.forward: per-voxel cosine of the two projection maps (B, D, ...) over the whole batch, the
    /// intersection I and union U of the two networks' foreground argmax (from their logits, no gradient), and
    /// −mean log(e^{I·s/τ}/(Σe^{(1−I)·s/τ} + e^{I·s/τ} + 1e-8)) − mean log(e^{(1−U)·s/τ}/(Σe^{U·s/τ} + e^{(1−U)·s/τ} + 1e-8)).
    /// </summary>
    public static Tensor Odcl(Tensor projA, Tensor projB, Tensor logitsA, Tensor logitsB, double tau) =>
        OdclRows(ToRows(projA), ToRows(projB), Foreground(logitsA), Foreground(logitsB), tau);

    /// <summary>A (B, D, spatial...) projection as rows, one per pixel, (B·pixels, D), and each row's inverse length
    /// 1/max(‖row‖, 1e-12) (normalize's eps), (B·pixels). The rows are never normalised themselves: a cosine is the
    /// rows' dot product times both inverse lengths, which spares the (pixels × D) division and its backward.</summary>
    sealed record Rows(Tensor Values, Tensor InverseLength);

    static Rows ToRows(Tensor proj)
    {
        using var scope = NewDisposeScope();
        long d = proj.shape[1];
        var perm = new long[] { 0 }.Concat(Enumerable.Range(2, (int)proj.dim() - 2).Select(i => (long)i)).Append(1).ToArray();
        var rows = proj.permute(perm).reshape(-1, d);
        var inv = rows.square().sum(-1).clamp_min(1e-24).rsqrt();
        return new Rows(rows.MoveToOuterDisposeScope(), inv.MoveToOuterDisposeScope());
    }

    /// <summary>Where the network predicts foreground (argmax ≠ 0), flattened.</summary>
    static Tensor Foreground(Tensor logits)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return ClassIndex.Of(logits).ne(0).flatten().MoveToOuterDisposeScope();
    }

    /// <summary><see cref="Odcl(Tensor, Tensor, Tensor, Tensor, double)"/> on projections already made rows and
    /// foregrounds already taken, so the step does each of its four once for the four pairs.</summary>
    static Tensor OdclRows(Rows za, Rows zb, Tensor fa, Tensor fb, double tau)
    {
        using var scope = NewDisposeScope();
        // cos = ⟨a, b⟩ / (‖a‖‖b‖), each length clamped at 1e-12 (F.cosine_similarity clamps at 1e-8: only rows
        // shorter than that would differ)
        var s = (za.Values * zb.Values).sum(-1) * za.InverseLength * zb.InverseLength;
        Tensor inter, union;
        using (no_grad())
        {
            inter = fa.logical_and(fb).to_type(s.dtype); union = fa.logical_or(fb).to_type(s.dtype);
        }
        var nom1 = (inter * s / tau).exp();
        var den1 = ((1 - inter) * s / tau).exp().sum() + nom1;
        var loss1 = -(nom1 / (den1 + 1e-8)).log().mean();
        var nom2 = ((1 - union) * s / tau).exp();
        var den2 = (union * s / tau).exp().sum() + nom2;
        var loss2 = -(nom2 / (den2 + 1e-8)).log().mean();
        return (loss1 + loss2).MoveToOuterDisposeScope();
    }

    /// <summary>Both networks' outputs for the two views: logits and projections, (B, C|64, spatial...).</summary>
    public sealed record Outputs(Tensor A1, Tensor A2, Tensor B1, Tensor B2, Tensor ProA1, Tensor ProA2, Tensor ProB1, Tensor ProB2);

    /// <summary>
    /// One step's losses as train_LA.py computes them (see the class summary), from both networks' outputs on both views;
    /// <paramref name="cosineDim"/> is the axis the view cosine runs along (the reference's last axis). Returns
    /// sel_a/sel_b (selection), a_teaches, sup_a/sup_b, cos_a/cos_b, dcc (the weaker network's term, unweighted), odcl
    /// (the four pairs), loss_a/loss_b (v_loss, r_loss) and loss = loss_a + loss_b.
    /// </summary>
    public static Dictionary<string, Tensor> ReferenceLosses(Outputs o, Tensor labels, int labeledCount, double alpha, double lambda,
        double viewWeight, double contrastWeight, double tau, double sharpenTemperature, long cosineDim)
    {
        long n = o.A1.shape[0], nl = labeledCount, nu = n - nl;
        Tensor Ce(Tensor l) => functional.cross_entropy(l.narrow(0, 0, nl), labels);
        Tensor Dice(Tensor l) => ForegroundDice(functional.softmax(l.narrow(0, 0, nl), 1), labels);
        Tensor ce1a = Ce(o.A1), ce2a = Ce(o.A2), ce1b = Ce(o.B1), ce2b = Ce(o.B2);
        Tensor d1a = Dice(o.A1), d2a = Dice(o.A2), d1b = Dice(o.B1), d2b = Dice(o.B2);
        var selA = alpha * (ce1a + ce2a) + (1 - alpha) * (d1a + d2a);
        var selB = alpha * (ce1b + ce2b) + (1 - alpha) * (d1b + d2b);
        bool aTeaches = selA.lt(selB).item<bool>(); // in the tensors' own precision, as `v_loss_sum < r_loss_sum`
        var supA = (ce1a + d1a + ce2a + d2a) / 2;
        var supB = (ce1b + d1b + ce2b + d2b) / 2;
        Tensor Cos(Tensor x, Tensor y) => (1 - functional.cosine_similarity(x, y, dim: cosineDim)).mean();
        var cosA = Cos(o.A1, o.A2); var cosB = Cos(o.B1, o.B2);
        var lossA = supA + viewWeight * cosA; var lossB = supB + viewWeight * cosB;
        var dcc = zeros(1, dtype: o.A1.dtype, device: o.A1.device).squeeze();
        if (nu > 0)
        {
            var (t1, t2, p1, p2) = aTeaches ? (o.A1, o.A2, o.B1, o.B2) : (o.B1, o.B2, o.A1, o.A2);
            Tensor Target(Tensor l) => PseudoLabels.Sharpen(functional.softmax(l.narrow(0, nl, nu), 1).detach(), sharpenTemperature);
            Tensor Mse(Tensor l, Tensor t) => functional.mse_loss(functional.softmax(l.narrow(0, nl, nu), 1), t);
            dcc = Mse(p1, Target(t1)) + Mse(p2, Target(t2));
            if (aTeaches) lossB = lossB + lambda * dcc; else lossA = lossA + lambda * dcc;
        }
        // the four pairs as the reference sums them; each projection's row lengths and each foreground taken once
        var (a1, a2, b1, b2) = (ToRows(o.ProA1), ToRows(o.ProA2), ToRows(o.ProB1), ToRows(o.ProB2));
        var (fa1, fa2, fb1, fb2) = (Foreground(o.A1), Foreground(o.A2), Foreground(o.B1), Foreground(o.B2));
        var odcl = OdclRows(a1, b1, fa1, fb1, tau) + OdclRows(a2, b2, fa2, fb2, tau) + OdclRows(a1, b2, fa1, fb2, tau) + OdclRows(a2, b1, fa2, fb1, tau);
        lossA = lossA + contrastWeight * odcl; lossB = lossB + contrastWeight * odcl;
        return new Dictionary<string, Tensor>
        {
            ["sel_a"] = selA, ["sel_b"] = selB, ["a_teaches"] = tensor(aTeaches ? 1f : 0f, device: CPU), ["sup_a"] = supA, ["sup_b"] = supB,
            ["cos_a"] = cosA, ["cos_b"] = cosB, ["dcc"] = dcc, ["odcl"] = odcl, ["loss_a"] = lossA, ["loss_b"] = lossB, ["loss"] = lossA + lossB,
        };
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        if (_former) return FormerStep(images, labels, labeledCount, context);
        long n = images.shape[0];
        var (la, fa, lb, fb) = ForwardBothViews(images, new Random(Seeds.Mix(context.Iteration, 0xC353)));
        var za = ProjA.forward(fa); var zb = ProjB.forward(fb);
        Tensor V(Tensor t, int view) => t.narrow(0, view * n, n);
        var o = new Outputs(V(la, 0), V(la, 1), V(lb, 0), V(lb, 1), V(za, 0), V(za, 1), V(zb, 0), V(zb, 1));
        double lambda = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
        var t = ReferenceLosses(o, labels, labeledCount, _alpha, lambda, _viewWeight, _contrastWeight, _contrastTemp, _temperature, cosineDim: -1);
        return new MethodStep(t["loss"], t.Where(kv => kv.Key != "loss").ToDictionary(kv => kv.Key, kv => kv.Value));
    }

    /// <summary>Both networks on the batch's two views stacked (view 1 = the batch, view 2 = its colour jitter + blur, or
    /// the batch again with second_view=same): logits and last decoder maps, (2B, ...).</summary>
    (Tensor la, Tensor fa, Tensor lb, Tensor fb) ForwardBothViews(Tensor images, Random rng)
    {
        Tensor v2;
        if (_sameView) v2 = images;
        else using (no_grad()) v2 = Perturbations.Strong(images, rng);
        var both = cat(new[] { images, v2 }, 0);
        var (la, _, fa) = NetA.ForwardWithFeatures(both);
        var (lb, _, fb) = NetB.ForwardWithFeatures(both);
        return (la, fa, lb, fb);
    }

    /// <summary>α·ΣCE + (1−α)·ΣDice (all-class Dice) over the views' labeled logits: the former training loss.</summary>
    public static Tensor CompetitionLoss(IEnumerable<Tensor> labeledLogits, Tensor labels, double alpha)
    {
        Tensor? ce = null, dice = null;
        foreach (var l in labeledLogits)
        {
            var c = SegmentationLosses.CrossEntropy(l, labels);
            var d = SegmentationLosses.Dice(functional.softmax(l, 1), labels);
            ce = ce is null ? c : ce + c; dice = dice is null ? d : dice + d;
        }
        return alpha * ce! + (1 - alpha) * dice!;
    }

    /// <summary>
    /// The former ODCL (form=former): InfoNCE between two (B, D, H, W) L2-normalised projection maps over agreed pixels:
    /// anchors from <paramref name="inter"/> (both foreground) and <paramref name="outside"/> (both background), positive =
    /// the other map at the same pixel, negatives = the other map at pixels of the other set. Zero when a set is empty.
    /// </summary>
    public static Tensor OutcomeContrast(Tensor za, Tensor zb, Tensor inter, Tensor outside, int anchors, double temp, Random rng)
    {
        long d = za.shape[1];
        var fa = za.permute(0, 2, 3, 1).reshape(-1, d); var fb = zb.permute(0, 2, 3, 1).reshape(-1, d);
        var iIdx = inter.flatten().nonzero().flatten(); var oIdx = outside.flatten().nonzero().flatten();
        long ni = iIdx.shape[0], no = oIdx.shape[0];
        if (ni == 0 || no == 0) return zeros(1, dtype: za.dtype, device: za.device).squeeze();
        Tensor Pick(Tensor idx, long count, int k) => idx.index_select(0, tensor(Enumerable.Range(0, k).Select(_ => rng.NextInt64(count)).ToArray(), device: idx.device));
        Tensor? total = null;
        foreach (var (src, srcN, other, otherN) in new[] { (iIdx, ni, oIdx, no), (oIdx, no, iIdx, ni) })
        {
            var a = Pick(src, srcN, anchors); var neg = Pick(other, otherN, anchors);
            foreach (var (x, y) in new[] { (fa, fb), (fb, fa) })
            {
                var q = x.index_select(0, a);                              // (K, D)
                var pos = (q * y.index_select(0, a)).sum(1, keepdim: true);   // (K, 1)
                var negs = q.matmul(y.index_select(0, neg).t());              // (K, K)
                var logits = cat(new[] { pos, negs }, 1) / temp;
                var l = functional.cross_entropy(logits, zeros(anchors, dtype: ScalarType.Int64, device: za.device));
                total = total is null ? l : total + l;
            }
        }
        return total! / 4;
    }

    MethodStep FormerStep(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long n = images.shape[0], nl = labeledCount, nu = n - nl;
        var rng = new Random(Seeds.Mix(context.Iteration, 0xC353));
        var (la, fa, lb, fb) = ForwardBothViews(images, rng);
        Tensor L(Tensor logits, int view, long start, long count) => logits.narrow(0, view * n + start, count);
        var compA = CompetitionLoss(new[] { L(la, 0, 0, nl), L(la, 1, 0, nl) }, labels, _alpha);
        var compB = CompetitionLoss(new[] { L(lb, 0, 0, nl), L(lb, 1, 0, nl) }, labels, _alpha);
        var terms = new Dictionary<string, Tensor> { ["comp_a"] = compA, ["comp_b"] = compB };
        var loss = compA + compB;
        if (nu == 0) return new MethodStep(loss, terms);

        bool aTeaches = compA.item<float>() <= compB.item<float>();
        Tensor? dcc = null, cos = null;
        for (int v = 0; v < 2; v++)
        {
            var pa = functional.softmax(L(la, v, nl, nu), 1); var pb = functional.softmax(L(lb, v, nl, nu), 1);
            var (teacher, pupil) = aTeaches ? (pa, pb) : (pb, pa);
            var m = functional.mse_loss(pupil, PseudoLabels.Sharpen(teacher.detach(), _temperature));
            dcc = dcc is null ? m : dcc + m;
        }
        foreach (var logits in new[] { la, lb })
        {
            var c = (1 - functional.cosine_similarity(functional.softmax(L(logits, 0, nl, nu), 1), functional.softmax(L(logits, 1, nl, nu), 1), dim: 1)).mean();
            cos = cos is null ? c : cos + c;
        }
        var za = functional.normalize(ProjA.forward(fa), dim: 1); var zb = functional.normalize(ProjB.forward(fb), dim: 1);
        Tensor? odcl = null;
        foreach (var (va, vb) in new[] { (0, 0), (1, 1), (0, 1), (1, 0) })
        {
            Tensor inter, outside;
            using (no_grad())
            {
                var fgA = ClassIndex.Of(L(la, va, 0, n)).gt(0); var fgB = ClassIndex.Of(L(lb, vb, 0, n)).gt(0);
                inter = fgA.logical_and(fgB); outside = fgA.logical_or(fgB).logical_not();
            }
            var c = OutcomeContrast(za.narrow(0, va * n, n), zb.narrow(0, vb * n, n), inter, outside, _anchors, _contrastTemp, rng);
            odcl = odcl is null ? c : odcl + c;
        }
        double lambda = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
        loss = loss + lambda * (dcc! + cos!) + _contrastWeight * odcl!;
        terms["dcc"] = dcc!; terms["cos"] = cos!; terms["odcl"] = odcl!; terms["a_teaches"] = tensor(aTeaches ? 1f : 0f, device: CPU);
        return new MethodStep(loss, terms);
    }

    public void Dispose() { NetA.Dispose(); NetB.Dispose(); ProjA.Dispose(); ProjB.Dispose(); Ensemble.Dispose(); }
}
