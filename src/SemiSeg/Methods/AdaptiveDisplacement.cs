using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// ABD, Adaptive Bidirectional Displacement (Chi et al., CVPR 2024), after chy-upc/ABD's cross-teaching script, and
/// CAD, Confidence-Aware Adaptive Displacement (Xiao et al., arXiv 2502.00536), which replaces ABD-R's fixed patch swap.
///
/// Framework (ABD cross teaching): network 1 sees the weak view x_w (the loader's augmentation), network 2 the strong
/// view x_s = Cutout(p 0.5)(colour jitter + blur)(x_w) — the two views share geometry. Per-pixel confidence c = max softmax;
/// an image is cut into a g×g grid (g = 4) of patches whose confidence is the mean of c.
/// loss = sup + 2·ABD-I (for t &lt; ⅔T) + λ(t)·(CPS + displaced),
///   sup = ½(CE + Dice) of each network on its labeled view; CPS = Dice(p₁, argmax p₂) + Dice(p₂, argmax p₁) on the
///   unlabeled views; λ(t) = 0.1·sigmoid_rampup(t // 150, 200) (SSL4MIS).
/// ABD-R (unlabeled): in view 1 the least confident patch a is replaced by the patch b of view 2 chosen among its top-k
///   (k = 4) most confident as argmin_b KL(P̄₁(a) ‖ P̄₂(b)) over mean class-probability vectors; its target is the other
///   network's argmax with the same displacement. Symmetrically for view 2. displaced = Dice(net₁(x₁'), t₁') + Dice(net₂(x₂'), t₂').
/// ABD-I (labeled, p 0.5 per image): view 1's most confident patch a takes view 2's least confident patch b (image and
///   label), and view 2's patch b takes view 1's patch a: harder labeled samples, trained with sup's loss.
/// CAD (method "cad", equations of this implementation, the paper's code is not public):
///   LLCR — in view 1 the low-confidence set {c₁ &lt; τ(t)} is labelled into 8-connected components; its largest
///   component R is kept, capped to the A(t)·HW pixels of lowest c₁, and restricted to pixels where view 2 is confident
///   (c₂ ≥ τ(t)); x₁' = x_w·(1−R) + x_s·R. Because the views share geometry, the replacement comes from the same place
///   (ABD moves a patch across locations, which can create anatomically impossible images), and the target stays the
///   other network's prediction t₁' = argmax p₂. Symmetrically for view 2. An empty R falls back to ABD-R's swap.
///   DTE — τ(t) = τ₀ + (τ₁ − τ₀)·t/T, rising from 0.80 to 0.95: early predictions are rarely above 0.95, and a rising
///   bar keeps "high-confidence" meaning the same as the network improves. A(t) = A₀ + (A₁ − A₀)·t/T, shrinking from
///   ¼ of the image to 1/16 (one ABD patch): early the unreliable regions are large and repairing them needs room;
///   late most of the image is reliable and large replacements would mostly erase context.
/// Deliberate differences: ABD pairs a UNet with an ImageNet-pretrained Swin-UNet; nothing can be downloaded here, so
/// both networks are UNets, two independent draws of libtorch's default initialisation. CPS's Kaiming / Xavier pair
/// (<c>reference_init=true</c>) is not ABD's (its second network is a pretrained Swin-UNet), and on ACDC at the CPU
/// table's setting it cost ABD 17.5 points at 3 patients (43.47 vs 61.00 Dice) and ABD/CAD 12 points at 7 (57.56 /
/// 57.48 vs 69.47 / 69.70), turning a significant gain over supervised-only into a significant loss: behind BatchNorm
/// the larger Kaiming weights shrink the effective step (see CrossPseudoSupervisionMethod). The displaced images of a network go
/// through it in one pass with its ABD-I images (BN statistics over both).
/// </summary>
public sealed class AdaptiveDisplacementMethod : ISegmentationMethod
{
    readonly bool _cad;
    readonly int _grid, _topK;
    readonly double _consistency, _rampup, _abdIWeight, _abdIUntil, _abdIP, _tau0, _tau1, _area0, _area1;

    public AdaptiveDisplacementMethod(UNetConfig config, MethodSettings settings, bool cad)
    {
        _cad = cad;
        _grid = (int)settings.Long("grid", 4);
        _topK = (int)settings.Long("top_k", 4);
        _consistency = settings.Double("consistency", 0.1);
        _rampup = settings.Double("rampup", 200);
        _abdIWeight = settings.Double("abd_i_weight", 2.0);
        _abdIUntil = settings.Double("abd_i_until", 2.0 / 3.0);
        _abdIP = settings.Double("abd_i_p", 0.5);
        if (cad)
        {
            _tau0 = settings.Double("tau_start", 0.80);
            _tau1 = settings.Double("tau_end", 0.95);
            _area0 = settings.Double("max_area_start", 0.25);
            _area1 = settings.Double("max_area_end", 1.0 / 16);
        }
        Net1 = new UNet2D(config);
        Net2 = new UNet2D(config);
        if (settings.Bool("reference_init", false)) CrossPseudoSupervisionMethod.ReferenceInit(Net1, Net2);
    }

    public string Name => _cad ? "cad" : "abd";
    public UNet2D Net1 { get; }
    public UNet2D Net2 { get; }
    public UNet2D InferenceNetwork => Net1;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Net1, Net2 };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Net1, Net2 };

    /// <summary>CAD's threshold τ(t) and maximum replacement fraction A(t).</summary>
    public (double tau, double maxArea) Schedule(long iteration, long maxIterations)
    {
        double r = maxIterations <= 0 ? 1 : Math.Clamp((double)iteration / maxIterations, 0, 1);
        return (_tau0 + (_tau1 - _tau0) * r, _area0 + (_area1 - _area0) * r);
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long n = images.shape[0], nl = labeledCount, nu = n - nl;
        var rng = new Random(Seeds.Mix(context.Iteration, 0xABD));
        Tensor strong;
        using (no_grad()) strong = Perturbations.Cutout(Perturbations.Strong(images, rng), rng).images;
        var o1 = Net1.forward(images); var o2 = Net2.forward(strong);
        var sup = SegmentationLosses.CeDice(o1.narrow(0, 0, nl), labels) + SegmentationLosses.CeDice(o2.narrow(0, 0, nl), labels);
        var terms = new Dictionary<string, Tensor> { ["sup"] = sup };
        var loss = sup;
        bool useAbdI = context.Iteration < _abdIUntil * context.MaxIterations && nl > 0;
        if (nu == 0 && !useAbdI) return new MethodStep(loss, terms);

        var p1 = functional.softmax(o1, 1); var p2 = functional.softmax(o2, 1);
        var extra1 = new List<Tensor>(); var extra2 = new List<Tensor>();
        Tensor? y1i = null, y2i = null, t1 = null, t2 = null;
        using (no_grad())
        {
            var (conf1, mean1) = Displacement.PatchScores(p1.detach(), _grid);
            var (conf2, mean2) = Displacement.PatchScores(p2.detach(), _grid);
            if (useAbdI)
            {
                var x1 = images.narrow(0, 0, nl).clone(); var x2 = strong.narrow(0, 0, nl).clone();
                y1i = labels.clone(); y2i = labels.clone();
                for (int i = 0; i < nl; i++)
                {
                    if (rng.NextDouble() >= _abdIP) continue;
                    int a = conf1[i].ArgMax(), b = conf2[i].ArgMin();
                    Displacement.CopyPatch(x1, strong, i, a, b, _grid); Displacement.CopyPatch(y1i, labels, i, a, b, _grid);
                    Displacement.CopyPatch(x2, images, i, b, a, _grid); Displacement.CopyPatch(y2i, labels, i, b, a, _grid);
                }
                extra1.Add(x1); extra2.Add(x2);
            }
            if (nu > 0)
            {
                var wu = images.narrow(0, nl, nu); var su = strong.narrow(0, nl, nu);
                var a1 = p1.narrow(0, nl, nu).detach().argmax(1); var a2 = p2.narrow(0, nl, nu).detach().argmax(1);
                var x1 = wu.clone(); var x2 = su.clone();
                t1 = a2.clone(); t2 = a1.clone();
                var (tau, maxArea) = _cad ? Schedule(context.Iteration, context.MaxIterations) : (0.0, 0.0);
                var c1 = _cad ? p1.narrow(0, nl, nu).detach().amax(new long[] { 1 }).contiguous().data<float>().ToArray() : null;
                var c2 = _cad ? p2.narrow(0, nl, nu).detach().amax(new long[] { 1 }).contiguous().data<float>().ToArray() : null;
                long h = images.shape[2], w = images.shape[3];
                for (int i = 0; i < nu; i++)
                {
                    int li = (int)nl + i;
                    bool displaced1 = false, displaced2 = false;
                    if (_cad)
                    {
                        int hw = (int)(h * w), cap = Math.Max(1, (int)(maxArea * hw));
                        var r1 = Displacement.LargestLowConfidenceRegion(c1!.AsSpan(i * hw, hw), c2!.AsSpan(i * hw, hw), (int)h, (int)w, tau, cap);
                        var r2 = Displacement.LargestLowConfidenceRegion(c2.AsSpan(i * hw, hw), c1.AsSpan(i * hw, hw), (int)h, (int)w, tau, cap);
                        if (r1 is not null) { Displacement.Paste(x1, su, i, r1); displaced1 = true; }
                        if (r2 is not null) { Displacement.Paste(x2, wu, i, r2); displaced2 = true; }
                    }
                    if (!displaced1)
                    {
                        var (a, b) = Displacement.KlGuidedChoice(conf1[li], mean1[li], conf2[li], mean2[li], _topK);
                        Displacement.CopyPatch(x1, su, i, a, b, _grid); Displacement.CopyPatch(t1, a2, i, a, b, _grid);
                    }
                    if (!displaced2)
                    {
                        var (a, b) = Displacement.KlGuidedChoice(conf2[li], mean2[li], conf1[li], mean1[li], _topK);
                        Displacement.CopyPatch(x2, wu, i, a, b, _grid); Displacement.CopyPatch(t2, a1, i, a, b, _grid);
                    }
                }
                extra1.Add(x1); extra2.Add(x2);
            }
        }
        var e1 = Net1.forward(cat(extra1, 0)); var e2 = Net2.forward(cat(extra2, 0));
        long off = 0;
        if (useAbdI)
        {
            var abdI = SegmentationLosses.CeDice(e1.narrow(0, 0, nl), y1i!) + SegmentationLosses.CeDice(e2.narrow(0, 0, nl), y2i!);
            loss = loss + _abdIWeight * abdI;
            terms["abd_i"] = abdI;
            off = nl;
        }
        if (nu > 0)
        {
            var u1 = p1.narrow(0, nl, nu); var u2 = p2.narrow(0, nl, nu);
            var cps = SegmentationLosses.Dice(u1, u2.detach().argmax(1)) + SegmentationLosses.Dice(u2, u1.detach().argmax(1));
            var disp = SegmentationLosses.Dice(functional.softmax(e1.narrow(0, off, nu), 1), t1!) +
                       SegmentationLosses.Dice(functional.softmax(e2.narrow(0, off, nu), 1), t2!);
            double lambda = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
            loss = loss + lambda * (cps + disp);
            terms["cps"] = cps; terms[_cad ? "llcr" : "abd_r"] = disp;
        }
        return new MethodStep(loss, terms);
    }

    public void Dispose() { Net1.Dispose(); Net2.Dispose(); }
}

/// <summary>The patch and region displacement operations of ABD and CAD, on (B, [C,] H, W) tensors.</summary>
public static class Displacement
{
    /// <summary>Per image, the mean confidence (max softmax) of each of the g×g patches, row-major, and each patch's mean
    /// class-probability vector, as arrays: conf[b][patch], mean[b][patch][class].</summary>
    public static (float[][] conf, float[][][] mean) PatchScores(Tensor probs, int grid)
    {
        using var scope = NewDisposeScope();
        long b = probs.shape[0], c = probs.shape[1], h = probs.shape[2], w = probs.shape[3];
        if (h % grid != 0 || w % grid != 0) throw new ArgumentException($"a {h}x{w} image does not split into a {grid}x{grid} grid of equal patches");
        var k = new long[] { h / grid, w / grid };
        var conf = functional.avg_pool2d(probs.amax(new long[] { 1 }, keepdim: true), k, k).reshape(b, grid * grid).contiguous().data<float>().ToArray();
        var mean = functional.avg_pool2d(probs, k, k).reshape(b, c, grid * grid).permute(0, 2, 1).contiguous().data<float>().ToArray();
        int g2 = grid * grid;
        var confs = new float[b][]; var means = new float[b][][];
        for (int i = 0; i < b; i++)
        {
            confs[i] = conf.AsSpan(i * g2, g2).ToArray();
            means[i] = Enumerable.Range(0, g2).Select(p => mean.AsSpan((int)((i * g2 + p) * c), (int)c).ToArray()).ToArray();
        }
        return (confs, means);
    }

    /// <summary>ABD-R's choice for one image: the least confident patch <c>to</c> of view 1 and, among view 2's top-k most
    /// confident patches, the <c>from</c> whose mean class distribution is closest to it: argmin KL(P̄₁(to) ‖ P̄₂(from)).</summary>
    public static (int to, int from) KlGuidedChoice(float[] conf1, float[][] mean1, float[] conf2, float[][] mean2, int topK)
    {
        int to = conf1.ArgMin();
        var candidates = Enumerable.Range(0, conf2.Length).OrderByDescending(j => conf2[j]).ThenBy(j => j).Take(Math.Max(1, topK));
        int from = candidates.MinBy(j => Kl(mean1[to], mean2[j]));
        return (to, from);
    }

    /// <summary>KL(p ‖ q) = Σ p·log(p/q), with a floor of 1e-8 on both.</summary>
    public static double Kl(float[] p, float[] q)
    {
        double s = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double a = Math.Max(p[i], 1e-8), b = Math.Max(q[i], 1e-8);
            s += a * Math.Log(a / b);
        }
        return s;
    }

    /// <summary>dst[sample, ..., patch to] = src[sample, ..., patch from] for a g×g grid over the last two axes.</summary>
    public static void CopyPatch(Tensor dst, Tensor src, int sample, int to, int from, int grid)
    {
        long h = dst.shape[^2], w = dst.shape[^1], ph = h / grid, pw = w / grid;
        using var d = dst.select(0, sample).narrow(-2, to / grid * ph, ph).narrow(-1, to % grid * pw, pw);
        using var s = src.select(0, sample).narrow(-2, from / grid * ph, ph).narrow(-1, from % grid * pw, pw);
        d.copy_(s);
    }

    /// <summary>dst[sample, ..., region] = src[sample, ..., region] for a (H·W) 0/1 region.</summary>
    public static void Paste(Tensor dst, Tensor src, int sample, bool[] region)
    {
        long h = dst.shape[^2], w = dst.shape[^1];
        using var m = tensor(region, new[] { h, w });
        using var d = dst.select(0, sample);
        using var s = src.select(0, sample);
        d.copy_(where(m, s, d));
    }

    /// <summary>
    /// CAD's LLCR region for one image: the largest 8-connected component of {conf &lt; τ}, capped to the
    /// <paramref name="maxPixels"/> pixels of lowest confidence, restricted to where the other view is confident
    /// (other ≥ τ). Null when nothing is left.
    /// </summary>
    public static bool[]? LargestLowConfidenceRegion(ReadOnlySpan<float> conf, ReadOnlySpan<float> other, int h, int w, double tau, int maxPixels)
    {
        var low = new byte[h * w];
        for (int i = 0; i < low.Length; i++) low[i] = conf[i] < tau ? (byte)1 : (byte)0;
        var largest = PseudoLabels.LargestComponent(low, 1, h, w, 2, perSlice: true, fullConnectivity: true);
        var pixels = new List<int>();
        for (int i = 0; i < largest.Length; i++) if (largest[i] == 1) pixels.Add(i);
        if (pixels.Count > maxPixels)
        {
            var c = conf.ToArray();
            pixels = pixels.OrderBy(i => c[i]).ThenBy(i => i).Take(maxPixels).ToList();
        }
        var region = new bool[h * w];
        int kept = 0;
        foreach (int i in pixels) if (other[i] >= tau) { region[i] = true; kept++; }
        return kept == 0 ? null : region;
    }

    internal static int ArgMin(this float[] v) { int k = 0; for (int i = 1; i < v.Length; i++) if (v[i] < v[k]) k = i; return k; }
    internal static int ArgMax(this float[] v) { int k = 0; for (int i = 1; i < v.Length; i++) if (v[i] > v[k]) k = i; return k; }
}
