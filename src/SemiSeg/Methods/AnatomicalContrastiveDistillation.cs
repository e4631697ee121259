using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// ACTION, Anatomical-aware Contrastive Distillation (You et al., IPMI 2023), after charlesyou999648/ACTION
/// train_2D_pretrain.py and train_2D_action.py, in one run of two stages.
///
/// Stage 1 (the first <c>pretrain_iterations</c>): ISD-style relational distillation. The student sees a strong view
/// (colour jitter + blur) of every image of the batch, the EMA teacher (m 0.99, with its own copy of the heads) the
/// loader's weak view. Global embeddings: the bottleneck average-pooled to 1×1 through an MLP (256→512→512);
/// local embeddings: the last decoder map average-pooled to 8×8 and flattened. Both L2-normalised. Against a queue Q
/// of K = 36 past teacher embeddings (one queue per level, FIFO), the student's similarity distribution is distilled
/// into the teacher's: L_isd = KL( softmax(k·Qᵀ/T_t) ‖ softmax(q·Qᵀ/T_s) ), T_s = 0.1, T_t = 0.01 (soft labels for
/// the negatives); loss = ½(CE + Dice) on the labeled images + L_isd(global) + L_isd(local).
/// At the switch the teacher takes the pre-trained student's weights (network and heads), as the reference's stage 2
/// loads the student's iter_30000.pth into both model and ema_model (train_2D_action.py:154-157; the EMA is saved
/// separately as iter_N_ema.pth and not used). <c>stage2_from_ema=true</c> restores this toolkit's behaviour before
/// issue 18 (the student takes the EMA teacher's weights).
/// Stage 2: ½(CE + Dice) on labeled images; the teacher's argmax pseudo-labels of the unlabeled images, CutMix-ed among
/// them (one box per image covering half the image, as the reference's generate_cutout_mask; partner = next image;
/// <c>cutmix_box=unimatch</c> restores the U(0.02, 0.4)-area box used before issue 18), train the student by CE weighted per image by the share of its
/// pixels whose confidence reaches the strong threshold 0.97 and averaged over the pixels whose CE is above 0 (ReCo's
/// unsupervised loss; until issue 18 it averaged over all pixels); plus the anatomical contrast:
/// ReCo's regional contrastive loss on a 32-d representation head over the last decoder map (average-pooled 2×, so
/// the extra memory is B·32·H/2·W/2): per class present, 256 hard queries (valid pixels whose predicted probability of
/// their class is below 0.97; unlabeled pixels are valid where the teacher's confidence exceeds 0.7), one positive
/// (the class's mean representation, no gradient) and 512 negatives drawn from the other classes' valid pixels, the
/// class chosen with probability softmax(cos(prototype_c, prototype_j)/τ) so that anatomically similar classes give
/// the hard negatives; CE over [positive, negatives] cosine similarities / τ, τ = 0.5; averaged over classes present.
/// The negatives come from SemiSeg's own counter-based stream (<see cref="DrawNegatives"/>, keyed by the iteration's
/// seeded generator) with the reference's probabilities, where the reference draws with torch and numpy. On the CPU
/// each class's cross-entropy and its gradient are computed in one pass over the sampled rows
/// (<see cref="ContrastCrossEntropy"/>) instead of on a gathered (Q, N, D) tensor: the same values up to float
/// summation order (tested against the tensor form).
/// loss = sup + unsup + k1·contrast with k1 = <c>contrast_weight</c> = 0.01, the reference's <c>--k1</c> default
/// (train_2D_action.py:68, :241; ACTION++ hard-codes 0.01). It was 1.0 here before issue 18; rows of docs/results.md
/// measured before then used 1.0.
/// Deliberate differences: one run holds both stages (and both pre-training passes of the reference, encoder and
/// encoder+decoder, are one pass here: the global and local losses are trained together); the local embedding has no
/// projection head; ACTION++'s adaptive anatomical contrast is not included.
/// Remaining departures, not yet measured (issue 18, audit B8/B9/B13): the pretrain_iterations default (10 000 inside
/// one budget) is not the reference's 30k + 30k + 30k stage-2 iterations; stage 2 keeps the optimizer (momentum and
/// the schedule's position) where the reference starts a new nesterov SGD at base lr with its own poly decay; the
/// local ISD branch pools the 16-channel last decoder map of the whole image with no head, where the reference pools
/// the output logits of 36 sliding 64×64 crops through a projection head and a predictor; the global head is
/// 256→512→ReLU→512 with no student predictor, the teacher heads are an EMA copy (the reference trains its key head
/// by gradient); the student, not the teacher, sees the augmented pre-training view; the EMA warms up and is updated
/// once per iteration (reference: constant 0.99, twice per stage-2 iteration); the representation head reads only the
/// last decoder map pooled 2× (reference: all five decoder maps, 496 channels, at full resolution, to 512-d); the
/// reference's colour jitter, blur and AdvMorph of the unlabeled batch are missing.
/// </summary>
public sealed class AnatomicalContrastiveDistillationMethod : ISegmentationMethod
{
    readonly long _pretrain, _queueSize, _queries, _negatives;
    readonly double _emaDecay, _tS, _tT, _strong, _weak, _temp, _contrastWeight, _isdWeight;
    readonly int _numClasses, _localPool;
    readonly bool _stage2FromEma, _unimatchBox;

    public AnatomicalContrastiveDistillationMethod(UNetConfig config, MethodSettings settings)
    {
        _pretrain = settings.Long("pretrain_iterations", 10000);
        _queueSize = settings.Long("queue_size", 36);
        _tS = settings.Double("student_temp", 0.1);
        _tT = settings.Double("teacher_temp", 0.01);
        _isdWeight = settings.Double("isd_weight", 1.0);
        _emaDecay = settings.Double("ema_decay", 0.99);
        _strong = settings.Double("strong_threshold", 0.97);
        _weak = settings.Double("weak_threshold", 0.7);
        _temp = settings.Double("contrast_temp", 0.5);
        _queries = settings.Long("num_queries", 256);
        _negatives = settings.Long("num_negatives", 512);
        _contrastWeight = settings.Double("contrast_weight", 0.01);
        _localPool = (int)settings.Long("local_pool", 8);
        _stage2FromEma = settings.Bool("stage2_from_ema", false);
        _unimatchBox = settings.String("cutmix_box", "action") switch
        {
            "action" => false,
            "unimatch" => true,
            var v => throw new ArgumentException($"cutmix_box must be action or unimatch (got '{v}')"),
        };
        _numClasses = config.NumClasses;
        Student = Segmenter2D.Create(config);
        Teacher = Ema.FrozenCopy(Student);
        Heads = new ActionHeads(Student.BottleneckChannels, config.Features[0]);
        TeacherHeads = new ActionHeads(Student.BottleneckChannels, config.Features[0]);
        TeacherHeads.load_state_dict(Heads.state_dict());
        foreach (var p in TeacherHeads.parameters()) p.requires_grad_(false);
        Memory = new IsdMemory(_queueSize, ActionHeads.GlobalDim, config.Features[0] * _localPool * _localPool);
    }

    public string Name => "action";
    public Segmenter2D Student { get; }
    public Segmenter2D Teacher { get; }
    public ActionHeads Heads { get; }
    public ActionHeads TeacherHeads { get; }
    public IsdMemory Memory { get; }
    public Segmenter2D InferenceNetwork => Student;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Student, Heads };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Student, Teacher, Heads, TeacherHeads, Memory };

    /// <summary>KL(softmax(k·Qᵀ/T_t) ‖ softmax(q·Qᵀ/T_s)), averaged over the batch (ISD's soft-negative distillation).</summary>
    public static Tensor IsdLoss(Tensor query, Tensor key, Tensor queue, double tStudent, double tTeacher)
    {
        using var scope = NewDisposeScope();
        var logS = functional.log_softmax(query.matmul(queue.t()) / tStudent, 1);
        var pT = functional.softmax(key.matmul(queue.t()) / tTeacher, 1);
        var kl = (pT * (pT.clamp_min(1e-12).log() - logS)).sum(1).mean();
        return kl.MoveToOuterDisposeScope();
    }

    (Tensor global, Tensor local) Embed(Tensor bottleneck, Tensor decoder, ActionHeads heads)
    {
        var g = functional.normalize(heads.Global(functional.adaptive_avg_pool2d(bottleneck, 1).flatten(1)), dim: 1);
        var l = functional.normalize(functional.adaptive_avg_pool2d(decoder, _localPool).flatten(1), dim: 1);
        return (g, l);
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long n = images.shape[0], nl = labeledCount, nu = n - nl;
        var rng = new Random(Seeds.Mix(context.Iteration, 0xAC7));
        if (context.Iteration < _pretrain) return Pretrain(images, labels, nl, rng);
        if (context.Iteration == _pretrain && _pretrain > 0) SwitchToStageTwo();
        var supOnly = nu == 0;
        long h = images.shape[2], w = images.shape[3];
        Tensor xu = images.narrow(0, nl, nu), pl = empty(0, device: images.device), conf = empty(0, device: images.device);
        if (!supOnly)
        {
            using (no_grad())
            {
                var pt = functional.softmax(Teacher.forward(xu), 1);
                (conf, pl) = pt.max(1);
                var boxes = tensor(Enumerable.Range(0, (int)nu).SelectMany(_ => _unimatchBox ? Perturbations.CutMixBox((int)h, (int)w, rng, p: 1.0) : HalfImageBox((int)h, (int)w, rng)).ToArray(), new[] { nu, h, w }, device: images.device);
                var partner = tensor(Enumerable.Range(0, (int)nu).Select(i => (long)((i + 1) % nu)).ToArray(), device: images.device);
                var b4 = boxes.unsqueeze(1);
                xu = xu * (1 - b4) + xu.index_select(0, partner) * b4;
                var bl = boxes.to_type(ScalarType.Bool);
                pl = where(bl, pl.index_select(0, partner), pl);
                conf = where(bl, conf.index_select(0, partner), conf);
            }
        }
        var x = supOnly ? images : cat(new[] { images.narrow(0, 0, nl), xu }, 0);
        var (logits, _, decoder) = Student.ForwardWithFeatures(x);
        var sup = SegmentationLosses.CeDice(logits.narrow(0, 0, nl), labels);
        var terms = new Dictionary<string, Tensor> { ["sup"] = sup };
        if (supOnly) return new MethodStep(sup, terms);

        // ReCo's unsupervised loss: CE to the pseudo-labels, weighted per image by its share of confident pixels
        var unsup = UnsupervisedLoss(logits.narrow(0, nl, nu), pl, conf, _strong);

        // anatomical contrast on the pooled representation
        var rep = Heads.Representation(functional.avg_pool2d(decoder, 2));
        Tensor target, valid, prob;
        using (no_grad())
        {
            target = cat(new[] { labels, pl }, 0).unsqueeze(1).to_type(ScalarType.Float32);
            target = functional.interpolate(target, new long[] { rep.shape[2], rep.shape[3] }, mode: InterpolationMode.Nearest).squeeze(1).to_type(ScalarType.Int64);
            var v = cat(new[] { ones(new[] { nl, h, w }, device: images.device), conf.gt(_weak).to_type(ScalarType.Float32) }, 0).unsqueeze(1);
            valid = functional.interpolate(v, new long[] { rep.shape[2], rep.shape[3] }, mode: InterpolationMode.Nearest).squeeze(1).gt(0.5);
            prob = functional.avg_pool2d(functional.softmax(logits.detach(), 1), 2);
        }
        var contrast = RegionalContrast(rep, target, valid, prob, _numClasses, _strong, _temp, _queries, _negatives, rng);
        var loss = sup + unsup + _contrastWeight * contrast;
        terms["unsup"] = unsup; terms["contrast"] = contrast;
        return new MethodStep(loss, terms);
    }

    /// <summary>The stage switch: by default the pre-trained student (network and heads) is copied into the teacher,
    /// as the reference loads iter_30000.pth into both; with stage2_from_ema=true the student takes the teacher's.</summary>
    public void SwitchToStageTwo()
    {
        using var _ = no_grad();
        if (_stage2FromEma)
        {
            Student.load_state_dict(Teacher.state_dict());
            Heads.load_state_dict(TeacherHeads.state_dict());
        }
        else
        {
            Teacher.load_state_dict(Student.state_dict());
            TeacherHeads.load_state_dict(Heads.state_dict());
        }
    }

    /// <summary>compute_unsupervised_loss of train_2D_action.py: CE to the pseudo-labels, weighted per image by the share
    /// of its pixels whose confidence reaches <paramref name="strong"/>, averaged over the pixels whose CE is above 0
    /// (zero when there are none; the reference would give NaN).</summary>
    public static Tensor UnsupervisedLoss(Tensor logits, Tensor pseudo, Tensor conf, double strong)
    {
        using var scope = NewDisposeScope();
        long n = logits.shape[0];
        var weight = conf.ge(strong).to_type(ScalarType.Float32).mean(new long[] { 1, 2 });
        var ce = functional.cross_entropy(logits, pseudo, reduction: Reduction.None);
        var positive = ce.gt(0);
        var loss = (weight.view(n, 1, 1) * ce * positive).sum() / positive.sum().clamp_min(1);
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>ACTION's (ReCo's) CutMix box, generate_cutout_mask(ratio 2) in augment.py: width w ~ U{W/2+1, …, W−1},
    /// height round(HW/2 / w), uniform position inside the image; 1 inside the box (the partner's pixels), 0 outside.</summary>
    public static float[] HalfImageBox(int h, int w, Random rng)
    {
        int bw = rng.Next(w / 2 + 1, w);
        int bh = (int)Math.Round(h * w / 2.0 / bw, MidpointRounding.ToEven);
        int x0 = rng.Next(0, w - bw + 1), y0 = rng.Next(0, h - bh + 1);
        var m = new float[h * w];
        for (int y = y0; y < y0 + bh; y++) for (int x = x0; x < x0 + bw; x++) m[y * w + x] = 1f;
        return m;
    }

    /// <summary>The weight k1 of the anatomical contrast in stage 2's loss.</summary>
    public double ContrastWeight => _contrastWeight;

    MethodStep Pretrain(Tensor images, Tensor labels, long nl, Random rng)
    {
        Tensor strong;
        using (no_grad()) strong = Perturbations.Strong(images, rng);
        var (logits, high, low) = Student.ForwardWithFeatures(strong);
        var sup = SegmentationLosses.CeDice(logits.narrow(0, 0, nl), labels);
        var (qg, ql) = Embed(high, low, Heads);
        Tensor kg, kl;
        using (no_grad())
        {
            var (_, th, tl) = Teacher.ForwardWithFeatures(images);
            (kg, kl) = Embed(th, tl, TeacherHeads);
        }
        // snapshots: the queues are overwritten below, before the backward pass needs them
        var isdG = IsdLoss(qg, kg, Memory.Global.clone(), _tS, _tT);
        var isdL = IsdLoss(ql, kl, Memory.Local.clone(), _tS, _tT);
        Memory.Enqueue(kg, kl);
        var loss = sup + _isdWeight * (isdG + isdL);
        return new MethodStep(loss, new Dictionary<string, Tensor> { ["sup"] = sup, ["isd_global"] = isdG, ["isd_local"] = isdL });
    }

    /// <summary>
    /// ReCo's regional contrastive loss on a (B, D, h, w) representation with (B, h, w) class targets, a (B, h, w) valid
    /// mask and (B, C, h, w) predicted probabilities (for the hard-query test). Sampling uses <paramref name="rng"/>.
    /// Zero when fewer than two classes are present. On the CPU each class's cross-entropy over [positive, negatives]
    /// and its gradient are computed in one pass over the sampled rows (<see cref="ContrastCrossEntropy"/>);
    /// <paramref name="fused"/> false (and any other device or type than float32, or a representation of 2^31 values
    /// or more) computes it with tensor operations, from the same samples.
    /// </summary>
    public static Tensor RegionalContrast(Tensor rep, Tensor target, Tensor valid, Tensor prob, int numClasses, double strongThreshold,
        double temp, long numQueries, long numNegatives, Random rng, bool fused = true)
    {
        // every intermediate belongs to this scope until the loss is out: freed deterministically, and none is left to
        // the finalizer while libtorch still reads it (a temporary passed straight into a native call is otherwise
        // collectable during that call)
        using var scope = NewDisposeScope();
        return RegionalContrastInScope(rep, target, valid, prob, numClasses, strongThreshold, temp, numQueries, numNegatives, rng,
            fused && rep.device.type == DeviceType.CPU && rep.dtype == ScalarType.Float32 && rep.numel() <= int.MaxValue).MoveToOuterDisposeScope();
    }

    static Tensor RegionalContrastInScope(Tensor rep, Tensor target, Tensor valid, Tensor prob, int numClasses, double strongThreshold,
        double temp, long numQueries, long numNegatives, Random rng, bool fused)
    {
        long d = rep.shape[1];
        var flat = rep.permute(0, 2, 3, 1).reshape(-1, d);
        var tgt = target.reshape(-1); var val = valid.reshape(-1);
        var probFlat = prob.permute(0, 2, 3, 1).reshape(-1, numClasses);
        // keys are compared as unit vectors: every pixel's is normalised once here, and the sampled negatives are
        // gathered from it (row by row the same values as normalising the gathered (Q, 1 + N, D) keys)
        Tensor unit;
        using (no_grad()) unit = functional.normalize(flat.detach(), p: 2, dim: 1, eps: 1e-8);
        if (fused) unit = unit.contiguous();
        var classes = new List<(Tensor idx, Tensor hard, Tensor proto)>();
        for (int c = 0; c < numClasses; c++)
        {
            Tensor idx, hardIdx;
            using (no_grad())
            {
                var m = val.logical_and(tgt.eq(c));
                idx = m.nonzero().flatten();
                if (idx.shape[0] == 0) continue;
                hardIdx = m.logical_and(probFlat.select(1, c).lt(strongThreshold)).nonzero().flatten();
            }
            classes.Add((idx, flat.index_select(0, hardIdx), flat.index_select(0, idx).mean(new long[] { 0 }, keepdim: true)));
        }
        if (classes.Count <= 1) return zeros(1, dtype: rep.dtype, device: rep.device).squeeze();
        var protos = cat(classes.Select(c => c.proto).ToList(), 0).detach();
        Tensor? total = null;
        int n = classes.Count;
        for (int i = 0; i < n; i++)
        {
            var hard = classes[i].hard;
            if (hard.shape[0] == 0) continue;
            int hardCount = (int)hard.shape[0]; // read once: each .shape is a native call and an allocation
            var anchorIdx = tensor(Enumerable.Range(0, (int)numQueries).Select(_ => (long)rng.Next(hardCount)).ToArray(), device: rep.device);
            var anchors = hard.index_select(0, anchorIdx);
            Tensor positive; Tensor? negatives = null;
            long[] negIdx;
            using (no_grad())
            {
                var others = Enumerable.Range(0, n).Where(j => j != i).ToArray();
                var sim = functional.cosine_similarity(protos[i].unsqueeze(0), protos.index_select(0, tensor(others.Select(j => (long)j).ToArray(), device: rep.device)), dim: 1);
                var p = functional.softmax(sim / temp, 0).cpu().data<float>().ToArray();
                negIdx = new long[numQueries * numNegatives];
                var negPool = cat(others.Select(j => classes[j].idx).ToList(), 0).cpu().data<long>().ToArray();
                var offsets = new int[others.Length]; var counts = new int[others.Length]; int acc = 0;
                for (int k = 0; k < others.Length; k++) { offsets[k] = acc; counts[k] = (int)classes[others[k]].idx.shape[0]; acc += counts[k]; }
                DrawNegatives(negIdx, negPool, offsets, counts, p, (ulong)rng.NextInt64());
                if (!fused) negatives = unit.index_select(0, tensor(negIdx, device: rep.device)).reshape(numQueries, numNegatives, d);
                positive = functional.normalize(protos[i], p: 2, dim: 0, eps: 1e-8);
            }
            var a = functional.normalize(anchors, p: 2, dim: 1, eps: 1e-8);
            Tensor l;
            if (fused)
            {
                // the same cross-entropy, its gradient with respect to the anchors computed alongside: the loss is that
                // value plus (a − a.detach())·G, which is zero in value and gives autograd exactly G for a
                l = FusedTerm(unit, negIdx, (int)numNegatives, a, positive, temp);
            }
            else
            {
                // cosine similarities of unit vectors: the positive's with one product, the negatives' per query (the
                // reference's torch.cosine_similarity over the broadcast (Q, 1 + N, D) pair computes the same values
                // with several full-size passes)
                var logits = cat(new[] { a.matmul(positive).unsqueeze(1), (negatives! * a.unsqueeze(1)).sum(2) }, 1) / temp;
                l = functional.cross_entropy(logits, zeros(numQueries, dtype: ScalarType.Int64, device: rep.device));
            }
            total = total is null ? l : total + l;
        }
        return total is null ? zeros(1, dtype: rep.dtype, device: rep.device).squeeze() : total / n;
    }

    /// <summary><see cref="ContrastCrossEntropy"/> on CPU tensors, read and written in place: its value plus
    /// (a − a.detach())·G, zero in value, so that autograd hands G to the anchors.</summary>
    static Tensor FusedTerm(Tensor unit, long[] negatives, int perQuery, Tensor a, Tensor positive, double temp)
    {
        using var anchors = a.detach().contiguous();
        using var pos = positive.contiguous();
        var g = empty(anchors.shape, dtype: ScalarType.Float32, device: anchors.device);
        double value = ContrastCrossEntropy(TensorMemory.Floats(unit), (int)unit.shape[1], negatives, perQuery,
            TensorMemory.Floats(anchors), TensorMemory.Floats(pos), temp, TensorMemory.Floats(g));
        GC.KeepAlive(unit);
        return tensor((float)value, device: a.device) + ((a - a.detach()) * g).sum();
    }

    /// <summary>
    /// ReCo's per-class term, mean over the Q queries of CE([a·p, a·k_1, …, a·k_N] / τ, 0), and its gradient with
    /// respect to the (Q, D) unit anchors a: (Σ_j softmax_j · key_j − p) / (τ·Q) per query, keys read as rows
    /// <paramref name="negatives"/> of <paramref name="keys"/> (rows of D, unit length) and p the unit positive. One
    /// pass over the sampled rows, which stay in cache (the keys of all pixels are 2.4 MB at the table's setting),
    /// where the tensor form gathers a (Q, N, D) copy (16.8 MB at 256 x 512 x 32), multiplies and sums it, and
    /// passes over it again backward (test: FusedContrastGivesTheTensorFormsLossAndGradient). ReCo's forward and
    /// backward at the table's shapes (4 classes, 256 queries x 512 negatives, 32-d keys of 8 x 48 x 48 pixels), two
    /// interleaved runs: 29-31 ms in the tensor form, 21-24 ms with this.
    /// </summary>
    public static double ContrastCrossEntropy(ReadOnlySpan<float> keys, int d, ReadOnlySpan<long> negatives, int perQuery,
        ReadOnlySpan<float> anchors, ReadOnlySpan<float> positive, double temp, Span<float> gradient)
    {
        int q = anchors.Length / d;
        if (negatives.Length != (long)q * perQuery) throw new ArgumentException($"{negatives.Length} negatives for {q} queries of {perQuery}");
        if (gradient.Length != anchors.Length) throw new ArgumentException("the gradient has the anchors' shape");
        double total = 0, scale = 1.0 / (temp * q);
        float inv = (float)(1 / temp);
        for (int i = 0; i < q; i++)
        {
            var a = anchors.Slice(i * d, d);
            var rows = negatives.Slice(i * perQuery, perQuery);
            var g = gradient.Slice(i * d, d);
            // one pass, softmax online: g accumulates Σ e^(l_j − max) key_j and sum Σ e^(l_j − max), both rescaled
            // when the running max rises (as flash attention does), so every sampled row is read once
            float first = Dot(a, positive) * inv, max = first;
            double sum = 1;
            positive.CopyTo(g);
            for (int n = 0; n < rows.Length; n++)
            {
                var key = keys.Slice((int)rows[n] * d, d);
                float l = Dot(a, key) * inv;
                if (l > max)
                {
                    float r = MathF.Exp(max - l);
                    sum *= r;
                    Scale(g, r);
                    max = l;
                }
                float e = MathF.Exp(l - max);
                sum += e;
                AddScaled(g, key, e);
            }
            total += Math.Log(sum) - (first - max);   // −log softmax_0
            // gradient (Σ_j softmax_j key_j − p)·scale
            float w = (float)(scale / sum), wp = (float)scale;
            for (int k = 0; k < d; k++) g[k] = g[k] * w - wp * positive[k];
        }
        return total / q;
    }

    // Dot, Scale and AddScaled by hand: System.Numerics.Tensors' TensorPrimitives.Dot, Multiply and MultiplyAdd give
    // the same values but cost more per call on these 32-value rows, 3.6 against 2.1 ms per class's 131 072 rows.
    static float Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        int k = 0, width = System.Numerics.Vector<float>.Count;
        var acc = System.Numerics.Vector<float>.Zero;
        ref float rx = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        ref float ry = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
        for (; k <= x.Length - width; k += width)
            acc += System.Numerics.Vector.LoadUnsafe(ref rx, (nuint)k) * System.Numerics.Vector.LoadUnsafe(ref ry, (nuint)k);
        float s = System.Numerics.Vector.Sum(acc);
        for (; k < x.Length; k++) s += x[k] * y[k];
        return s;
    }

    static void Scale(Span<float> x, float w)
    {
        for (int k = 0; k < x.Length; k++) x[k] *= w;
    }

    static void AddScaled(Span<float> into, ReadOnlySpan<float> x, float w)
    {
        int k = 0, width = System.Numerics.Vector<float>.Count;
        ref float ri = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(into);
        ref float rx = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        for (; k <= x.Length - width; k += width)
            System.Numerics.Vector.StoreUnsafe(System.Numerics.Vector.LoadUnsafe(ref ri, (nuint)k) + System.Numerics.Vector.LoadUnsafe(ref rx, (nuint)k) * w, ref ri, (nuint)k);
        for (; k < x.Length; k++) into[k] += w * x[k];
    }

    /// <summary>
    /// ReCo's negative sampling (its Categorical draw of classes and negative_index_sampler's np.random.randint):
    /// each of <paramref name="into"/> is a pixel of class k with probability <paramref name="classProbability"/>[k],
    /// uniformly among that class's <paramref name="counts"/>[k] pixels at <paramref name="offsets"/>[k] of
    /// <paramref name="pool"/>. Draw t is SplitMix64.Mix(<paramref name="key"/> + (t + 1)·γ): its upper 32 bits
    /// choose the class against the cumulative probabilities, its lower 32 the pixel (multiply-shift, bias below 2^-32
    /// per pixel). A class's 131 072 draws (256 queries x 512 negatives) take 0.9 ms, where two draws per negative
    /// from a seeded System.Random (its subtractive generator) took 2.8-3.1 ms on ACTION's main thread while the
    /// OpenMP worker waited.
    /// </summary>
    public static void DrawNegatives(Span<long> into, ReadOnlySpan<long> pool, int[] offsets, int[] counts, float[] classProbability, ulong key)
    {
        int classes = classProbability.Length;
        Span<ulong> below = stackalloc ulong[classes];   // class k where the upper 32 bits are below below[k]
        double cumulative = 0;
        for (int k = 0; k < classes; k++)
        {
            cumulative += classProbability[k];
            below[k] = k == classes - 1 ? ulong.MaxValue : (ulong)Math.Min(cumulative * 4294967296.0, 4294967296.0);
        }
        ulong state = key;
        for (int t = 0; t < into.Length; t++)
        {
            ulong z = SplitMix64.Next(ref state);
            ulong upper = z >> 32;
            int k = 0;
            while (upper >= below[k]) k++;
            into[t] = pool[offsets[k] + (int)(((z & 0xFFFFFFFFUL) * (ulong)counts[k]) >> 32)];
        }
    }

    public void AfterOptimizerStep(TrainingContext context)
    {
        double alpha = Ema.WarmupAlpha(_emaDecay, context.Iteration);
        Ema.Update(Teacher, Student, alpha);
        if (context.Iteration < _pretrain) Ema.Update(TeacherHeads, Heads, alpha);
    }

    public void Dispose() { Student.Dispose(); Teacher.Dispose(); Heads.Dispose(); TeacherHeads.Dispose(); Memory.Dispose(); }
}

/// <summary>ACTION's extra heads: the global projection MLP (stage 1) and the pixel representation head (stage 2).</summary>
public sealed class ActionHeads : Module
{
    public const int GlobalDim = 512, RepresentationDim = 32;
    readonly TorchSharp.Modules.Sequential global, representation;

    public ActionHeads(long bottleneckChannels, long decoderChannels) : base(nameof(ActionHeads))
    {
        global = Sequential(Linear(bottleneckChannels, GlobalDim), ReLU(), Linear(GlobalDim, GlobalDim));
        representation = Sequential(Conv2d(decoderChannels, 64, 1), Norms.BatchNorm2d(64), ReLU(), Conv2d(64, RepresentationDim, 1));
        RegisterComponents();
    }

    public Tensor Global(Tensor pooled) => global.forward(pooled);
    public Tensor Representation(Tensor decoderFeatures) => representation.forward(decoderFeatures);
}

/// <summary>ISD's FIFO queues of teacher embeddings (global and local), kept in checkpoints so a resumed run continues
/// with the same negatives.</summary>
public sealed class IsdMemory : Module
{
    public IsdMemory(long size, long globalDim, long localDim) : base(nameof(IsdMemory))
    {
        using (no_grad())
        {
            register_buffer("queue_global", functional.normalize(randn(size, globalDim), dim: 1));
            register_buffer("queue_local", functional.normalize(randn(size, localDim), dim: 1));
            register_buffer("pointer", zeros(1, dtype: ScalarType.Int64));
        }
    }

    public Tensor Global => get_buffer("queue_global")!;
    public Tensor Local => get_buffer("queue_local")!;

    /// <summary>Writes the keys over the oldest entries, wrapping around.</summary>
    public void Enqueue(Tensor global, Tensor local)
    {
        using var noGrad = no_grad();
        var ptr = get_buffer("pointer")!;
        long size = Global.shape[0], p = ptr.item<long>();
        for (long i = 0; i < global.shape[0]; i++)
        {
            long slot = (p + i) % size;
            Global[slot].copy_(global[i]);
            Local[slot].copy_(local[i]);
        }
        ptr.fill_((p + global.shape[0]) % size);
    }
}
