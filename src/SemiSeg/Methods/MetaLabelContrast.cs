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
/// jizongFox/Self-paced-Contrastive-Learning. Meta-labels come free with the scan: the slice's position bucket in its
/// volume ("partition", 3 buckets on ACDC), the patient, the cardiac phase ("cycle"), and "self" (the other view of the
/// same slice, SimCLR). The UNet bottleneck is average-pooled and projected, by one head per meta-label kind as in the
/// reference (MLP 256→256, L2-normalised: the kinds' positive sets conflict — same patient, different position — and
/// one shared embedding would have to satisfy all of them at once); every slice of
/// the batch (labeled and unlabeled) gives two views (the loader's, and a random flip/rot90 plus colour jitter and
/// blur of it). Per meta-label kind m, over the 2N embeddings with cosine similarities s and T = 0.07:
///   l_ij = −[ s_ij/T − log Σ_{k≠i} exp(s_ik/T) ] for j in P_m(i) = { j ≠ i : same meta-label },
///   self-paced weights w_ij = 1[l_ij ≤ γ_m(t)] (hard) or max(1 − l_ij/γ_m(t), 0) (soft), no gradient through w,
///   L_m = Σ w_ij·l_ij / Σ w_ij, with γ_m(t) = γ_begin + (γ_end − γ_begin)·(t/T)^0.5 growing so that harder positive
///   pairs are admitted as training proceeds (ACDC defaults: partition 5→60, patient 3.5→50, cycle 2→50, self ∞).
/// loss = supervised_weight·½(CE + Dice)(labeled) + contrast_weight·Σ_m L_m.
/// `semiseg pretrain` runs it with supervised_weight 0 (the pre-training stage) and writes a checkpoint whose encoder
/// any later `semiseg train --init-encoder` starts from; fine-tuning may keep the term (supervised_weight 1,
/// contrast_weight 0.1, the reference's regulariser setting).
/// `semiseg pretrain` defaults to the reference's optimiser recipe (RAdam, peak lr 2e-4 after a linear warm-up of 1/8
/// of the run, then cosine decay); fine-tuning uses whatever `train` is given (the table's SGD 0.01 poly).
/// The logged "supcon" term is the plain (unweighted) SupCon loss summed over the kinds: the self-paced terms average
/// over the admitted pairs only, so they rise while γ admits harder pairs and do not show progress by themselves.
/// The network is SemiSeg's UNet (the SSL4MIS layout, so the encoder transfers to every method) without its dropout
/// (<c>dropout=true</c> keeps it), as the reference's UNet (conv-BN-ReLU twice, no dropout): with the SSL4MIS rates
/// (0.05…0.5, 0.5 on the bottleneck that is pooled and projected) even plain SimCLR on 8 fixed images stayed near
/// chance after 60 Adam steps (3.14 → 2.27, chance ln 15 = 2.71); without dropout the same 60 steps go below half of
/// chance (test ContrastivePretrainingLearnsToTellSlicesApart). On ACDC the summed meta-label SupCon loss still stays
/// near its starting value over 1000 iterations either way (the reference pre-trains 16 000). Fine-tuning copies the encoder's weights into whatever network the
/// later run builds (dropout included, it has no weights).
/// Deliberate differences: the schedule of γ follows iterations instead of epochs; the reference's dense
/// (pixel-level) variant is not included.
/// </summary>
public sealed class MetaLabelContrastMethod : ISegmentationMethod
{
    public enum Weighting { Hard, Soft }
    readonly double _temperature, _supWeight, _contrastWeight, _power;
    readonly int _partitions;
    readonly Weighting _mode;
    readonly (string kind, double begin, double end)[] _kinds;

    public MetaLabelContrastMethod(UNetConfig config, MethodSettings settings)
    {
        _temperature = settings.Double("temperature", 0.07);
        _supWeight = settings.Double("supervised_weight", 1.0);
        _contrastWeight = settings.Double("contrast_weight", 0.1);
        _partitions = (int)settings.Long("partitions", 3);
        _power = settings.Double("gamma_power", 0.5);
        _mode = settings.Bool("soft", true) ? Weighting.Soft : Weighting.Hard;
        var kinds = new List<(string, double, double)>();
        foreach (var (kind, b, e) in new[] { ("partition", 5.0, 60.0), ("patient", 3.5, 50.0), ("cycle", 2.0, 50.0), ("self", double.PositiveInfinity, double.PositiveInfinity) })
        {
            bool on = settings.Bool(kind, kind != "self");
            double gb = settings.Double($"{kind}_gamma_begin", b), ge = settings.Double($"{kind}_gamma_end", e);
            if (on) kinds.Add((kind, gb, ge));
        }
        if (kinds.Count == 0) throw new ArgumentException("meta-contrast: every meta-label kind is switched off (partition, patient, cycle, self)");
        _kinds = kinds.ToArray();
        // the reference's UNet has no dropout; with the SSL4MIS rates (0.5 on the bottleneck) the pooled bottleneck
        // embedding is noise the contrastive objective has to fight (see the header)
        Network = Segmenter2D.Create(settings.Bool("dropout", false) ? config : config with { Dropout = new double[config.Dropout.Length] });
        // one projection head per meta-label kind, as the reference's hooks (each SelfPacedINFONCEHook builds its own)
        Projectors = _kinds.Select(_ => new ProjectionHead(Network.BottleneckChannels, 256)).ToArray();
    }

    public string Name => "meta-contrast";
    public Segmenter2D Network { get; }
    /// <summary>The projection heads, one per enabled meta-label kind (in the order partition, patient, cycle, self).</summary>
    public IReadOnlyList<ProjectionHead> Projectors { get; }
    public Segmenter2D InferenceNetwork => Network;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Network }.Concat(Projectors).ToArray();
    public IReadOnlyList<Module> StatefulModules => TrainableModules;

    /// <summary>γ(t) = γ_begin + (γ_end − γ_begin)·(t/T)^p.</summary>
    public static double Gamma(double begin, double end, long iteration, long maxIterations, double power = 0.5) =>
        double.IsPositiveInfinity(begin) ? double.PositiveInfinity : begin + (end - begin) * Math.Pow(Math.Clamp((double)iteration / Math.Max(1, maxIterations), 0, 1), power);

    /// <summary>The self-paced supervised-contrastive loss of L2-normalised (2N, D) embeddings with integer meta-label
    /// keys (2N); zero when no anchor has a positive.</summary>
    public static Tensor SelfPacedSupCon(Tensor z, long[] keys, double temperature, double gamma, Weighting mode)
    {
        using var scope = NewDisposeScope();
        long n = z.shape[0];
        var sim = z.matmul(z.t()) / temperature;
        var eye = torch.eye(n, dtype: ScalarType.Bool);
        var logDenominator = sim.masked_fill(eye, double.NegativeInfinity).logsumexp(1, keepdim: true);
        var pairLoss = logDenominator - sim;                                   // l_ij
        var k = tensor(keys);
        var positive = k.unsqueeze(0).eq(k.unsqueeze(1)).logical_and(eye.logical_not()).to_type(z.dtype);
        Tensor w;
        using (no_grad())
        {
            var l = pairLoss.detach();
            w = double.IsPositiveInfinity(gamma) ? ones_like(l)
                : mode == Weighting.Hard ? l.le(gamma).to_type(z.dtype) : (1 - l / gamma).clamp_min(0);
            w = w * positive;
        }
        var total = w.sum();
        if (total.item<float>() <= 0) return zeros(1, dtype: z.dtype).squeeze().MoveToOuterDisposeScope();
        return ((w * pairLoss).sum() / total).MoveToOuterDisposeScope();
    }

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
        var rng = new Random(Seeds.Mix(context.Iteration, 0x3E7A));
        Tensor view2;
        using (no_grad())
        {
            var parts = new List<Tensor>();
            for (long i = 0; i < n; i++)
            {
                var x = images.narrow(0, i, 1);
                if (rng.Next(2) == 1) x = x.flip(3);
                x = x.rot90(rng.Next(4), (2, 3));
                parts.Add(x);
            }
            view2 = Perturbations.Strong(cat(parts, 0).contiguous(), rng);
        }
        var both = cat(new[] { images, view2 }, 0);
        var enc = Network.Encode(both);
        var pooled = functional.adaptive_avg_pool2d(enc.Bottleneck, 1).flatten(1);
        var terms = new Dictionary<string, Tensor>();
        Tensor? contrast = null;
        var meta2 = meta.Concat(meta).ToList();
        for (int k = 0; k < _kinds.Length; k++)
        {
            var (kind, b, e) = _kinds[k];
            var z = functional.normalize(Projectors[k].forward(pooled), dim: 1);
            var keys = kind == "self" ? Enumerable.Range(0, (int)n).Concat(Enumerable.Range(0, (int)n)).Select(i => (long)i).ToArray() : Keys(kind, meta2);
            var l = SelfPacedSupCon(z, keys, _temperature, Gamma(b, e, context.Iteration, context.MaxIterations, _power), _mode);
            terms[kind] = l;
            contrast = contrast is null ? l : contrast + l;
            using (no_grad())
            {
                var plain = SelfPacedSupCon(z.detach(), keys, _temperature, double.PositiveInfinity, _mode);
                terms["supcon"] = terms.TryGetValue("supcon", out var acc) ? acc + plain : plain;
            }
        }
        var loss = _contrastWeight * contrast!;
        if (_supWeight > 0 && labeledCount > 0)
        {
            var logits = Network.Decode(new EncoderFeatures(enc.Scales.Select(s => s.narrow(0, 0, labeledCount)).ToArray()), out _);
            var sup = SegmentationLosses.CeDice(logits, labels);
            terms["sup"] = sup;
            loss = loss + _supWeight * sup;
        }
        return new MethodStep(loss, terms);
    }

    public void Dispose() { Network.Dispose(); foreach (var p in Projectors) p.Dispose(); }
}

/// <summary>A two-layer MLP projection head (Linear, ReLU, Linear).</summary>
public sealed class ProjectionHead : Module<Tensor, Tensor>
{
    readonly TorchSharp.Modules.Sequential mlp;

    public ProjectionHead(long input, long output) : base(nameof(ProjectionHead))
    {
        mlp = Sequential(Linear(input, output), ReLU(), Linear(output, output));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => mlp.forward(x);
}
