using SemiSeg.Data;
using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// Self-paced contrastive learning with meta-labels (Peng, Wang, Desrosiers &amp; Pedersoli, NeurIPS 2021), after
/// jizongFox/Self-paced-Contrastive-Learning @ ce7e980 (the published ACDC runs: <c>semi_seg/scripts/run_self_paced_acdc</c>
/// run_multi_selfpaced, loss <c>contrastyou/losses/contrast_loss2.py</c> SelfPacedSupConLoss, kinds combined in
/// <c>semi_seg/epochers/comparable.py</c> <c>_regularization</c>, batches from <c>semi_seg/data/rearr.py</c>
/// ContrastBatchSampler). Meta-labels come free with the scan: the slice's position bucket in its volume ("partition",
/// 3 buckets on ACDC), the patient, the cardiac phase ("cycle"), and "self" (the other view of the same slice, SimCLR).
///
/// Batches. Pre-training (<c>semiseg pretrain</c>, supervised_weight 0) draws the reference's batches over all
/// training slices, labeled or not (<see cref="ScanGroupedBatchSampler"/>): m scans (<c>scans_per_batch</c>, 10 as the
/// reference's <c>-g 10</c>), one slice per partition of each, so every slice has same-scan (patient, cycle) and
/// same-partition positives. Fine-tuning with the term as a regulariser (supervised_weight &gt; 0) keeps the ordinary
/// labeled + unlabeled batches and, as the reference's hook (<c>semi_seg/hooks/infonce.py</c> takes the last
/// <c>n_unl·2</c> features), contrasts the unlabeled images only.
///
/// Embedding. The UNet bottleneck is average-pooled and projected, by one head per meta-label kind as in the reference
/// (Linear 256→256, LeakyReLU 0.01, Linear 256, L2-normalised: <c>contrastyou/projectors/heads.py</c>). The two views
/// are the loader's (augmented) image and a random flip/rot90 plus colour jitter and blur of it.
///
/// Loss, per kind m over the 2N embeddings with cosine similarities s and T = 0.07 (contrast_loss2.py:212-242):
///   l_ij = −[ s_ij/T − log Σ_{k≠i} exp(s_ik/T) ],  P_m(i) = { j ≠ i : same meta-label } (the other view included),
///   w_ij = 1[l_ij ≤ γ_m(t)] (hard) or max(1 − l_ij/γ_m(t), 0) (soft), no gradient through w,
///   L_m = mean over anchors i of  Σ_{j∈P(i)} w_ij·l_ij / |P(i)|   (divided by the positive count, not by Σ w),
///   γ_m(t) = γ_begin + (γ_end − γ_begin)·(t/T)^0.5 (ACDC: partition 5→60, patient 3.5→50, cycle 2→50, soft; self ∞).
/// <c>self_paced=false</c> trains every kind on the plain loss (γ = ∞): the reference's <c>infonce</c> pre-training runs
/// (run_self_paced_acdc's run_neurips and the first command of run_multi_selfpaced), its baseline for the self-paced
/// one. At the CPU budget the self-paced weights of γ(0) = 5 (l ≈ ln 59 ≈ 4.1 at the start: weights about 0.18, every
/// pair with l ≥ 5 dropped) were measured to collapse the embedding to one point, where the plain loss learns
/// (docs/results.md, "Meta-label pre-training").
/// The kinds are combined as the reference's weighted average Σ_m a_m·L_m / Σ_m a_m with importances a
/// (<c>partition_weight</c>, <c>patient_weight</c>, <c>cycle_weight</c>, <c>self_weight</c>; default 1, 0.1, 0.1, 1:
/// the first of the published settings 1 0.1 0.1).
/// loss = supervised_weight·½(CE + Dice)(labeled) + contrast_weight·Σ_m a_m·L_m / Σ_m a_m.
/// The logged "supcon" is the same weighted average of the plain (γ = ∞) loss ("supcon_KIND" per kind), beside
/// "supcon_chance" = ln(2N − 1) (what an embedding that cannot tell positives from negatives scores when all s are
/// equal), "supcon_shuffled" (what the same embeddings would score with randomly drawn positives: ≥ ln(2N − 1), the
/// chance level of an embedding whose similarities spread), "supcon_floor" = the weighted average of mean_i ln|P(i)|
/// (positives collapsed, negatives infinitely far) and "pos_KIND", the mean positives per anchor. The self-paced
/// terms average a growing set of admitted pairs and do not show progress by themselves.
///
/// Kinds that take one value on the training data (partition and cycle on 2D images: HC18, PSFHS, own data) would make
/// every pair positive; the reference raises NotImplementedError for kinds a dataset lacks. Here the trainer calls
/// <see cref="FitToData"/>, which switches such a kind off and says so by name (an error if nothing is left).
///
/// The network is SemiSeg's UNet (the SSL4MIS layout, so the encoder transfers to every method) without its dropout
/// (<c>dropout=true</c> keeps it), as the reference's UNet (conv-BN-ReLU twice, no dropout): with the SSL4MIS rates
/// (0.05…0.5, 0.5 on the bottleneck that is pooled and projected) even plain SimCLR on 8 fixed images stays near
/// chance (test ContrastivePretrainingLearnsToTellSlicesApart). Fine-tuning copies the encoder's weights into whatever
/// network the later run builds (<c>train --init-encoder</c>).
///
/// Departures from the reference, and why:
/// - γ follows iterations instead of epochs (SemiSeg has no epochs; the same curve over the run).
/// - The second view is appearance (colour jitter, blur) plus flip/rot90 of the loader's view, not a second
///   independently augmented view (rotation ±45°, flips, crop, ColorJitter) whose first-view feature map the reference
///   warps to align before projecting. For the global head the warp does not matter: a flip or rot90 only permutes the
///   feature map's positions, which global average pooling ignores.
/// - Partition buckets are min(b−1, ⌊idx·b/L⌋), equal thirds; the reference's ACDC rule (cut = L // 3: idx ≤ cut−1,
///   ≤ 2·cut, else) puts at most one slice per scan in a different bucket.
/// - An anchor without any positive (possible only with hand-made keys: the other view always is one) is left out of
///   the mean; the reference raises on the NaN.
/// - The cycle key is the frame name interned (frame01/frame02 in the SSL4MIS data: ED/ES as the reference's 00/01).
/// - The pre-training recipe: RAdam 2e-4 after a warm-up of 1/8 of the run then cosine, weight decay 0 (the reference's
///   <c>specific/pretrain.yaml</c>), 16 000 iterations (80 epochs × 200 batches) are `semiseg pretrain`'s defaults.
/// - The reference's dense (pixel-level) variant is not included.
/// </summary>
public sealed class MetaLabelContrastMethod : ISegmentationMethod, IMetaLabelBatches
{
    public enum Weighting { Hard, Soft }
    readonly double _temperature, _supWeight, _contrastWeight, _power;
    readonly int _partitions, _scansPerBatch;
    readonly Weighting _mode;
    readonly List<(string kind, double begin, double end, double importance)> _kinds = new();
    readonly List<ProjectionHead> _projectors = new();

    public MetaLabelContrastMethod(UNetConfig config, MethodSettings settings)
    {
        _temperature = settings.Double("temperature", 0.07);
        _supWeight = settings.Double("supervised_weight", 1.0);
        _contrastWeight = settings.Double("contrast_weight", 0.1);
        _partitions = (int)settings.Long("partitions", 3);
        _scansPerBatch = (int)settings.Long("scans_per_batch", 10);
        _power = settings.Double("gamma_power", 0.5);
        _mode = settings.Bool("soft", true) ? Weighting.Soft : Weighting.Hard;
        if (_partitions < 1) throw new ArgumentException($"meta-contrast: partitions must be >= 1 (got {_partitions})");
        if (_scansPerBatch < 1) throw new ArgumentException($"meta-contrast: scans_per_batch must be >= 1 (got {_scansPerBatch})");
        var defaults = new (string kind, double b, double e, double a)[]
        {
            ("partition", 5.0, 60.0, 1.0), ("patient", 3.5, 50.0, 0.1), ("cycle", 2.0, 50.0, 0.1), ("self", double.PositiveInfinity, double.PositiveInfinity, 1.0),
        };
        // self_paced=false: the plain SupCon loss for every kind (γ = ∞), the reference's `infonce` runs
        bool selfPaced = settings.Bool("self_paced", true);
        foreach (var (kind, b, e, a) in defaults)
        {
            bool on = settings.Bool(kind, kind != "self");
            double gb = selfPaced ? settings.Double($"{kind}_gamma_begin", b) : double.PositiveInfinity;
            double ge = selfPaced ? settings.Double($"{kind}_gamma_end", e) : double.PositiveInfinity;
            double imp = settings.Double($"{kind}_weight", a);
            if (imp < 0) throw new ArgumentException($"meta-contrast: {kind}_weight must be >= 0 (got {imp})");
            if (on && imp > 0) _kinds.Add((kind, gb, ge, imp));
        }
        if (_kinds.Count == 0) throw new ArgumentException("meta-contrast: every meta-label kind is switched off or weighted 0 (partition, patient, cycle, self)");
        // the reference's UNet has no dropout; with the SSL4MIS rates (0.5 on the bottleneck) the pooled bottleneck
        // embedding is noise the contrastive objective has to fight (see the header)
        Network = Segmenter2D.Create(settings.Bool("dropout", false) ? config : config with { Dropout = new double[config.Dropout.Length] });
        // one projection head per meta-label kind, as the reference's hooks (each builds its own)
        foreach (var _ in _kinds) _projectors.Add(new ProjectionHead(Network.BottleneckChannels, 256));
    }

    public string Name => "meta-contrast";
    public Segmenter2D Network { get; }
    /// <summary>The projection heads, one per enabled meta-label kind (in the order partition, patient, cycle, self).</summary>
    public IReadOnlyList<ProjectionHead> Projectors => _projectors;
    /// <summary>The enabled kinds with their importance, in the order of <see cref="Projectors"/>.</summary>
    public IReadOnlyList<(string Kind, double Importance)> Kinds => _kinds.Select(k => (k.kind, k.importance)).ToArray();
    public Segmenter2D InferenceNetwork => Network;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Network }.Concat(_projectors).ToArray();
    public IReadOnlyList<Module> StatefulModules => TrainableModules;

    /// <summary>Pre-training (no supervised term) draws scan-grouped batches over all training slices; fine-tuning
    /// keeps the ordinary labeled + unlabeled batches.</summary>
    public ScanGroupedBatches? ScanGrouped => _supWeight > 0 ? null : new ScanGroupedBatches(_scansPerBatch, _partitions);

    /// <summary>Switches off (by name, in the returned warnings) every enabled kind that takes a single value over the
    /// training slices: it would make every pair positive. Call before the optimizer is built.</summary>
    public IReadOnlyList<string> FitToData(IReadOnlyList<MetaLabels> training)
    {
        var warnings = new List<string>();
        if (training.Count == 0) return warnings;
        for (int k = _kinds.Count - 1; k >= 0; k--)
        {
            var kind = _kinds[k].kind;
            if (kind == "self") continue;
            int values = Keys(kind, training).Distinct().Count();
            if (values > 1) continue;
            warnings.Add($"meta-contrast: warning: meta-label kind '{kind}' takes a single value on this data ({Describe(kind, training[0])} for all {training.Count} training slices), so every pair would be positive; '{kind}' is switched off");
            _projectors[k].Dispose();
            _projectors.RemoveAt(k);
            _kinds.RemoveAt(k);
        }
        warnings.Reverse();
        if (_kinds.Count == 0)
            throw new ArgumentException("meta-contrast: no meta-label kind is left that tells this data's slices apart (partition, patient and cycle each take one value); add -p self=true (SimCLR)");
        return warnings;
    }

    string Describe(string kind, MetaLabels m) => kind switch
    {
        "partition" => $"position bucket {m.PositionBucket(_partitions)} of {_partitions}",
        "patient" => $"patient '{m.Patient}'",
        _ => $"phase '{m.Phase}'",
    };

    /// <summary>γ(t) = γ_begin + (γ_end − γ_begin)·(t/T)^p.</summary>
    public static double Gamma(double begin, double end, long iteration, long maxIterations, double power = 0.5) =>
        double.IsPositiveInfinity(begin) ? double.PositiveInfinity : begin + (end - begin) * Math.Pow(Math.Clamp((double)iteration / Math.Max(1, maxIterations), 0, 1), power);

    /// <summary>
    /// The self-paced supervised-contrastive loss of L2-normalised (2N, D) embeddings with integer meta-label keys
    /// (2N), as the reference's SelfPacedSupConLoss: per anchor the weighted log-likelihoods of its positives summed and
    /// divided by its positive count, then −mean over the anchors (those with a positive; zero when none has one).
    /// γ = ∞ gives the plain SupCon loss.
    /// </summary>
    public static Tensor SelfPacedSupCon(Tensor z, long[] keys, double temperature, double gamma, Weighting mode)
    {
        using var scope = NewDisposeScope();
        long n = z.shape[0];
        var sim = z.matmul(z.t()) / temperature;
        var eye = torch.eye(n, dtype: ScalarType.Bool, device: z.device);
        var logLikelihood = sim - sim.masked_fill(eye, double.NegativeInfinity).logsumexp(1, keepdim: true);   // −l_ij
        var k = tensor(keys, device: z.device);
        var positive = k.unsqueeze(0).eq(k.unsqueeze(1)).logical_and(eye.logical_not()).to_type(z.dtype);
        var count = positive.sum(1);
        var anchors = count.gt(0);
        if (!anchors.any().item<bool>()) return zeros(1, dtype: z.dtype, device: z.device).squeeze().MoveToOuterDisposeScope();
        Tensor w;
        using (no_grad())
        {
            var l = logLikelihood.detach().neg();
            w = double.IsPositiveInfinity(gamma) ? ones_like(l)
                : mode == Weighting.Hard ? l.le(gamma).to_type(z.dtype) : (1 - l / gamma).clamp_min(0);
            w = w * positive;
        }
        var perAnchor = (w * logLikelihood).sum(1) / count.clamp_min(1);
        return perAnchor.masked_select(anchors).mean().neg().MoveToOuterDisposeScope();
    }

    /// <summary>The reference's <c>weighted_average_iter</c>: Σ a_m·L_m / Σ a_m.</summary>
    public static Tensor CombineKinds(IReadOnlyList<Tensor> losses, IReadOnlyList<double> importance)
    {
        if (losses.Count != importance.Count || losses.Count == 0) throw new ArgumentException("one importance per loss, at least one");
        double total = importance.Sum();
        Tensor? sum = null;
        for (int i = 0; i < losses.Count; i++) sum = sum is null ? losses[i] * importance[i] : sum + losses[i] * importance[i];
        return sum! / total;
    }

    /// <summary>The plain SupCon loss these embeddings would score if their positives were drawn at random: per anchor
    /// the mean over k ≠ i of l_ik = log Σ_{k'≠i} exp(s_ik'/T) − s_ik/T, averaged over anchors. At least ln(2N − 1)
    /// (equality when all similarities are equal); an embedding that has learned nothing about the meta-labels scores
    /// about this, whatever the spread of its similarities.</summary>
    public static Tensor ShuffledChance(Tensor z, double temperature)
    {
        using var scope = NewDisposeScope();
        long n = z.shape[0];
        var sim = z.matmul(z.t()) / temperature;
        var eye = torch.eye(n, dtype: ScalarType.Bool, device: z.device);
        var lse = sim.masked_fill(eye, double.NegativeInfinity).logsumexp(1);
        var meanOthers = sim.masked_fill(eye, 0).sum(1) / (n - 1);
        return (lse - meanOthers).mean().MoveToOuterDisposeScope();
    }

    /// <summary>Per anchor, the number of other embeddings with its key (the other view included).</summary>
    public static int[] PositiveCounts(long[] keys) =>
        keys.Select((key, i) => keys.Where((o, j) => j != i && o == key).Count()).ToArray();

    /// <summary>Integer keys of a meta-label kind for the slices of a batch.</summary>
    public long[] Keys(string kind, IReadOnlyList<MetaLabels> meta) => kind switch
    {
        "partition" => meta.Select(m => (long)m.PositionBucket(_partitions)).ToArray(),
        "patient" => Intern(meta.Select(m => m.Patient)),
        "cycle" => Intern(meta.Select(m => m.Phase)),
        _ => Enumerable.Range(0, meta.Count).Select(i => (long)i).ToArray(),
    };

    static long[] Intern(IEnumerable<string> values)
    {
        var ids = new Dictionary<string, long>();
        return values.Select(v => ids.TryGetValue(v, out var id) ? id : ids[v] = ids.Count).ToArray();
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        var meta = context.Meta ?? throw new InvalidOperationException("meta-contrast needs the batch's meta-labels (slice position, patient, phase)");
        long n = images.shape[0];
        int nu = (int)n - labeledCount;                 // contrasted: the unlabeled images (all of a pre-training batch)
        var rng = new Random(Seeds.Mix(context.Iteration, 0x3E7A));
        var terms = new Dictionary<string, Tensor>();
        Tensor both = images;
        if (nu > 0)
        {
            using (no_grad())
            {
                var parts = new List<Tensor>();
                for (long i = labeledCount; i < n; i++)
                {
                    var x = images.narrow(0, i, 1);
                    if (rng.Next(2) == 1) x = x.flip(3);
                    x = x.rot90(rng.Next(4), (2, 3));
                    parts.Add(x);
                }
                var view2 = Perturbations.Strong(cat(parts, 0).contiguous(), rng);
                both = cat(new[] { images, view2 }, 0);
            }
        }
        var enc = Network.Encode(both);
        Tensor loss = zeros(1, dtype: images.dtype, device: images.device).squeeze();
        if (nu > 0)
        {
            var pooled = functional.adaptive_avg_pool2d(enc.Bottleneck, 1).flatten(1);
            var zIn = cat(new[] { pooled.narrow(0, labeledCount, nu), pooled.narrow(0, n, nu) }, 0);
            var unlabeledMeta = meta.Skip(labeledCount).Take(nu).ToList();
            var meta2 = unlabeledMeta.Concat(unlabeledMeta).ToList();
            var selfPaced = new List<Tensor>(); var plain = new List<Tensor>(); var shuffled = new List<Tensor>();
            double floor = 0;
            for (int k = 0; k < _kinds.Count; k++)
            {
                var (kind, b, e, a) = _kinds[k];
                var z = functional.normalize(_projectors[k].forward(zIn), dim: 1);
                var keys = kind == "self" ? Enumerable.Range(0, nu).Concat(Enumerable.Range(0, nu)).Select(i => (long)i).ToArray() : Keys(kind, meta2);
                var l = SelfPacedSupCon(z, keys, _temperature, Gamma(b, e, context.Iteration, context.MaxIterations, _power), _mode);
                terms[kind] = l;
                selfPaced.Add(l);
                using (no_grad())
                {
                    var p = SelfPacedSupCon(z.detach(), keys, _temperature, double.PositiveInfinity, _mode);
                    plain.Add(p); terms[$"supcon_{kind}"] = p;
                    shuffled.Add(ShuffledChance(z.detach(), _temperature));
                }
                var counts = PositiveCounts(keys);
                floor += a * counts.Where(c => c > 0).Select(c => Math.Log(c)).DefaultIfEmpty(0).Average();
                terms[$"pos_{kind}"] = tensor((float)counts.Average(), device: CPU);
            }
            var importance = _kinds.Select(x => x.importance).ToArray();
            loss = _contrastWeight * CombineKinds(selfPaced, importance);
            terms["supcon"] = CombineKinds(plain, importance);
            terms["supcon_chance"] = tensor((float)Math.Log(2.0 * nu - 1), device: CPU);
            terms["supcon_floor"] = tensor((float)(floor / importance.Sum()), device: CPU);
            terms["supcon_shuffled"] = CombineKinds(shuffled, importance);
        }
        if (_supWeight > 0 && labeledCount > 0)
        {
            var logits = Network.Decode(new EncoderFeatures(enc.Scales.Select(s => s.narrow(0, 0, labeledCount)).ToArray()), out _);
            var sup = SegmentationLosses.CeDice(logits, labels);
            terms["sup"] = sup;
            loss = loss + _supWeight * sup;
        }
        return new MethodStep(loss, terms);
    }

    public void Dispose() { Network.Dispose(); foreach (var p in _projectors) p.Dispose(); }
}

/// <summary>m scans per batch, one slice per partition of each (<see cref="ScanGroupedBatchSampler"/>).</summary>
public sealed record ScanGroupedBatches(int ScansPerBatch, int Partitions);

/// <summary>A method that uses meta-labels: it may ask for scan-grouped batches over all training slices, and it
/// checks its meta-label kinds against the training data before training starts.</summary>
public interface IMetaLabelBatches
{
    /// <summary>Null: the ordinary labeled + unlabeled batches.</summary>
    ScanGroupedBatches? ScanGrouped { get; }
    /// <summary>Adapts to the training slices' meta-labels; returns warnings for the log.</summary>
    IReadOnlyList<string> FitToData(IReadOnlyList<MetaLabels> training);
}

/// <summary>A two-layer MLP projection head (Linear, LeakyReLU 0.01, Linear), the reference's global head.</summary>
public sealed class ProjectionHead : Module<Tensor, Tensor>
{
    readonly TorchSharp.Modules.Sequential mlp;

    public ProjectionHead(long input, long output) : base(nameof(ProjectionHead))
    {
        mlp = Sequential(Linear(input, output), new StableLeakyReLU(0.01), Linear(output, output));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => mlp.forward(x);
}
