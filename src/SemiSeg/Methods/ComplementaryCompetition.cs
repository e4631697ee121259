using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// C3S3, Complementary Competition and Contrastive Selection (He et al., ICME 2025, arXiv 2506.07368), after
/// Y-TARL/C3S3 (3D, VNet + ResNet34-encoder net), in 2D: network A = the UNet, network B = the ResNet-encoder UNet, each
/// with a per-pixel projection head (1×1 convs 16→32→32 on the last decoder map). Both see two views of the batch: the
/// loader's view v₁ and v₂ = colour jitter + blur of it (same geometry).
/// Dynamic complementary competition: L_comp(N) = α·(CE(v₁) + CE(v₂)) + (1−α)·(Dice(v₁) + Dice(v₂)) on the labeled
/// images (α 0.5); the network with the lower L_comp this iteration is the good student and its sharpened (T 0.1)
/// unlabeled softmax of both views teaches the other by softmax-MSE.
/// View consistency: 1 − cos(p(v₁), p(v₂)) over classes, per unlabeled pixel, for each network.
/// Outcome-driven contrastive learning: for the four cross pairs (A v₁, B v₁), (A v₂, B v₂), (A v₁, B v₂), (A v₂, B v₁),
/// foreground masks from each side's argmax give the intersection I (both foreground) and the union's complement Ū
/// (both background); pixels where they disagree are not used. Up to 256 anchors are drawn from each of I and Ū; an
/// anchor's positive is the other network's projection at the same pixel, its negatives (256) the other network's
/// projections drawn from the other set: InfoNCE with T 0.1, in both directions.
/// loss = L_comp(A) + L_comp(B) + λ(t)·(MSE_dcc + L_cos) + contrast_weight·L_odcl, λ(t) = 0.1·sigmoid_rampup(t // 150, 40).
/// Deliberate differences: 2D networks (the reference is 3D); the second view differs in appearance only, so that
/// pixels correspond between views; no gradient checkpointing (the 2D maps are small).
/// </summary>
public sealed class ComplementaryCompetitionMethod : ISegmentationMethod
{
    readonly double _alpha, _temperature, _consistency, _rampup, _contrastTemp, _contrastWeight;
    readonly int _anchors;

    public ComplementaryCompetitionMethod(UNetConfig config, MethodSettings settings)
    {
        _alpha = settings.Double("alpha", 0.5);
        _temperature = settings.Double("sharpen_temp", 0.1);
        _consistency = settings.Double("consistency", 0.1);
        _rampup = settings.Double("rampup", 40);
        _contrastTemp = settings.Double("contrast_temp", 0.1);
        _contrastWeight = settings.Double("contrast_weight", 0.1);
        _anchors = (int)settings.Long("anchors", 256);
        NetA = Segmenter2D.Create(config);
        NetB = new ResUNet2D(config);
        ProjA = PixelProjector(config.Features[0]);
        ProjB = PixelProjector(config.Features[0]);
    }

    static TorchSharp.Modules.Sequential PixelProjector(long c) => Sequential(Conv2d(c, 32, 1), Norms.BatchNorm2d(32), ReLU(), Conv2d(32, 32, 1));

    public string Name => "c3s3";
    public Segmenter2D NetA { get; }
    public ResUNet2D NetB { get; }
    public TorchSharp.Modules.Sequential ProjA { get; }
    public TorchSharp.Modules.Sequential ProjB { get; }
    public Segmenter2D InferenceNetwork => NetA;
    public IReadOnlyList<Module> TrainableModules => new Module[] { NetA, NetB, ProjA, ProjB };
    public IReadOnlyList<Module> StatefulModules => new Module[] { NetA, NetB, ProjA, ProjB };

    /// <summary>α·ΣCE + (1−α)·ΣDice over the views' labeled logits.</summary>
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
    /// InfoNCE between two (B, D, H, W) L2-normalised projection maps over agreed pixels: anchors from the (B, H, W)
    /// sets <paramref name="inter"/> (both foreground) and <paramref name="outside"/> (both background), positive = the
    /// other map at the same pixel, negatives = the other map at pixels of the other set. Zero when a set is empty.
    /// </summary>
    public static Tensor OutcomeContrast(Tensor za, Tensor zb, Tensor inter, Tensor outside, int anchors, double temp, Random rng)
    {
        long d = za.shape[1];
        var fa = za.permute(0, 2, 3, 1).reshape(-1, d); var fb = zb.permute(0, 2, 3, 1).reshape(-1, d);
        var iIdx = inter.flatten().nonzero().flatten(); var oIdx = outside.flatten().nonzero().flatten();
        long ni = iIdx.shape[0], no = oIdx.shape[0];
        if (ni == 0 || no == 0) return zeros(1, dtype: za.dtype).squeeze();
        Tensor Pick(Tensor idx, long count, int k) => idx.index_select(0, tensor(Enumerable.Range(0, k).Select(_ => rng.NextInt64(count)).ToArray()));
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
                var l = functional.cross_entropy(logits, zeros(anchors, dtype: ScalarType.Int64));
                total = total is null ? l : total + l;
            }
        }
        return total! / 4;
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long n = images.shape[0], nl = labeledCount, nu = n - nl;
        var rng = new Random(Seeds.Mix(context.Iteration, 0xC353));
        Tensor v2;
        using (no_grad()) v2 = Perturbations.Strong(images, rng);
        var both = cat(new[] { images, v2 }, 0);
        var (la, _, fa) = NetA.ForwardWithFeatures(both);
        var (lb, _, fb) = NetB.ForwardWithFeatures(both);
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
                var fgA = L(la, va, 0, n).argmax(1).gt(0); var fgB = L(lb, vb, 0, n).argmax(1).gt(0);
                inter = fgA.logical_and(fgB); outside = fgA.logical_or(fgB).logical_not();
            }
            var c = OutcomeContrast(za.narrow(0, va * n, n), zb.narrow(0, vb * n, n), inter, outside, _anchors, _contrastTemp, rng);
            odcl = odcl is null ? c : odcl + c;
        }
        double lambda = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
        loss = loss + lambda * (dcc! + cos!) + _contrastWeight * odcl!;
        terms["dcc"] = dcc!; terms["cos"] = cos!; terms["odcl"] = odcl!; terms["a_teaches"] = tensor(aTeaches ? 1f : 0f);
        return new MethodStep(loss, terms);
    }

    public void Dispose() { NetA.Dispose(); NetB.Dispose(); ProjA.Dispose(); ProjB.Dispose(); }
}
