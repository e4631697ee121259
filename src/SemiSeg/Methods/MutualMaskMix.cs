using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// M3HL, Mutual Mask Mix with High-Low level feature consistency (Liu et al., MICCAI 2025, arXiv 2508.03752), after
/// PHPJava666/M3HL @ 19151b3 code/ACDC_M3HL_train.py. Student + EMA teacher (α 0.99 over the whole state dict, BN
/// included, constant: :345, :132-138). The teacher is built as its own network with its own random initialisation,
/// as the reference's <c>ema_model = create_model(ema=True)</c> (:252; net_factory only detaches its parameters), so
/// its pseudo-labels are near-random until the EMA has pulled it toward the student (<c>teacher_init=copy</c> starts
/// it as an exact copy of the student instead, SemiSeg's behaviour before issue 19).
/// Per sample, a 4×4 grid mask M with 8 of the 16 blocks zeroed (:167-199); the labeled half-batches a, b and unlabeled
/// halves u_a, u_b are mixed both ways (:313-314): x_u = u_a·M + l_a·(1−M), x_l = l_b·M + u_b·(1−M). Targets are mixed
/// the same way from ground truth and the teacher's pseudo-labels (argmax, then each class's largest connected
/// component per slice, :303-304); the loss is BCP's region-weighted Dice + CE (:319-320): on x_u the pseudo-labels of
/// u_a inside M weigh <c>u_weight</c> 0.5 and the ground truth of l_a outside weighs 1; on x_l the ground truth of l_b
/// inside M weighs 1 and the pseudo-labels of u_b outside weigh 0.5 (<see cref="Mix"/>, <see cref="MixedLoss"/>).
/// High/low-level consistency with the teacher on the unmixed unlabeled images, from the same forward pass that gives
/// the logits (:322-332): low = mean over the 4 (student mixed image, teacher u_a/u_b) pairs of L1 between the last
/// decoder maps; high = mean over the same pairs of 1 − cosine similarity between the flattened bottlenecks.
/// Total = (Dice + CE)/2 + <c>hl_weight</c>·(low + high)/2 with hl_weight 1, as in the reference (:338; its ramp is
/// computed but unused).
/// The reference's two teacher calls (u_a, u_b) and two student calls (x_u, x_l) each run as one forward in which every
/// batch norm normalises each call's images by their own statistics (<see cref="BatchNormGroups"/>): the same outputs
/// and running statistics, with the convolutions over both calls' images at once.
/// Departures: <c>pretrain_iterations</c> (default 0, the reference script has no pre-training stage) allows BCP-style
/// labeled copy-paste pre-training with the same mask, after which the teacher is set to the student. The reference
/// runs a constant learning rate (SGD 0.01, 30 000 iterations, batch 12 + 12): use --schedule constant, or
/// configs/acdc/m3hl.yaml. The masks are drawn from SemiSeg's seeded generator, not numpy's.
/// </summary>
public sealed class MutualMaskMixMethod : ISegmentationMethod
{
    readonly long _pretrain;
    readonly double _uWeight, _emaDecay, _ratio, _hlWeight;
    readonly int _grid, _numClasses;

    public MutualMaskMixMethod(UNetConfig config, MethodSettings settings)
    {
        _grid = (int)settings.Long("grid", 4);
        _ratio = settings.Double("mask_ratio", 0.5);
        _uWeight = settings.Double("u_weight", 0.5);
        _emaDecay = settings.Double("ema_decay", 0.99);
        _hlWeight = settings.Double("hl_weight", 1.0);
        _pretrain = settings.Long("pretrain_iterations", 0);
        _numClasses = config.NumClasses;
        Student = Segmenter2D.Create(config);
        var init = settings.String("teacher_init", "own");
        if (init == "copy") Teacher = Ema.FrozenCopy(Student);
        else if (init == "own")
        {
            // its own draw from the initialisers, after the student's
            Teacher = Segmenter2D.Create(config);
            foreach (var p in Teacher.parameters()) p.requires_grad_(false);
        }
        else throw new ArgumentException($"m3hl: teacher_init must be 'own' (the reference: a separately initialised network) or 'copy' (got '{init}')");
    }

    public string Name => "m3hl";
    public Segmenter2D Student { get; }
    public Segmenter2D Teacher { get; }
    public Segmenter2D InferenceNetwork => Student;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Student };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Student, Teacher };

    /// <summary>(n, H, W) masks, one grid mask per sample.</summary>
    public Tensor Masks(long n, long h, long w, Random rng, Device device) =>
        tensor(Enumerable.Range(0, (int)n).SelectMany(_ => Perturbations.GridBlockMask((int)h, (int)w, rng, _grid, _ratio)).ToArray(), new[] { n, h, w }, device: device);

    /// <summary>Mean over the student × teacher pairs of the low-level L1 and of the high-level 1 − cosine.</summary>
    public static (Tensor low, Tensor high) HighLowConsistency(IReadOnlyList<(Tensor high, Tensor low)> student, IReadOnlyList<(Tensor high, Tensor low)> teacher)
    {
        Tensor? low = null, high = null;
        foreach (var s in student)
            foreach (var t in teacher)
            {
                var l = functional.l1_loss(s.low, t.low);
                var h = (1 - functional.cosine_similarity(s.high.flatten(1), t.high.flatten(1), dim: 1)).mean();
                low = low is null ? l : low + l;
                high = high is null ? h : high + h;
            }
        int pairs = student.Count * teacher.Count;
        return (low! / pairs, high! / pairs);
    }

    /// <summary>The mutual mix (reference :313-314): x_u = u_a·M + l_a·(1−M), x_l = l_b·M + u_b·(1−M); masks (n, H, W).</summary>
    public static (Tensor unlabeledMix, Tensor labeledMix) Mix(Tensor lA, Tensor lB, Tensor uA, Tensor uB, Tensor mask)
    {
        var m4 = mask.unsqueeze(1);
        return (uA * m4 + lA * (1 - m4), lB * m4 + uB * (1 - m4));
    }

    /// <summary>The region-weighted loss of both mixed images (reference :319-320, BCP mix_loss): on x_u, u_a's
    /// pseudo-labels inside M (weight <paramref name="uWeight"/>) and l_a's ground truth outside (1); on x_l, l_b's
    /// ground truth inside M (1) and u_b's pseudo-labels outside (<paramref name="uWeight"/>). Returns (Dice, CE),
    /// each summed over the two images.</summary>
    public static (Tensor dice, Tensor ce) MixedLoss(Tensor logitsUnlabeledMix, Tensor logitsLabeledMix, Tensor yA, Tensor yB, Tensor plA, Tensor plB, Tensor mask, double uWeight)
    {
        var (ud, uc) = BidirectionalCopyPasteMethod.MixLoss(logitsUnlabeledMix, plA, yA, mask, uWeight, 1.0);
        var (ld, lc) = BidirectionalCopyPasteMethod.MixLoss(logitsLabeledMix, yB, plB, mask, 1.0, uWeight);
        return (ud + ld, uc + lc);
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        if (labeledCount < 2) throw new ArgumentException("M3HL needs at least 2 labeled images per batch (two halves to mix)");
        long h = images.shape[2], w = images.shape[3], nu = images.shape[0] - labeledCount;
        var rng = new Random(Seeds.Mix(context.Iteration, 0x3A1));
        int half = labeledCount / 2;
        var lA = images.narrow(0, 0, half); var lB = images.narrow(0, half, half);
        var yA = labels.narrow(0, 0, half); var yB = labels.narrow(0, half, half);

        if (context.Iteration < _pretrain || nu < 2)
        {
            var m = Masks(half, h, w, rng, images.device);
            var x = lA * m.unsqueeze(1) + lB * (1 - m.unsqueeze(1));
            var (d, c) = BidirectionalCopyPasteMethod.MixLoss(Student.forward(x), yA, yB, m, 1.0, 1.0);
            return new MethodStep((d + c) / 2, new Dictionary<string, Tensor> { ["dice"] = d, ["ce"] = c });
        }
        if (_pretrain > 0 && context.Iteration == _pretrain) Teacher.load_state_dict(Student.state_dict());

        long k = Math.Min(half, nu / 2);
        lA = lA.narrow(0, 0, k); lB = lB.narrow(0, 0, k); yA = yA.narrow(0, 0, k); yB = yB.narrow(0, 0, k);
        var uA = images.narrow(0, labeledCount, k); var uB = images.narrow(0, labeledCount + nu / 2, k);
        Tensor plA, plB;
        (Tensor high, Tensor low) tA, tB;
        using (no_grad())
        {
            var ((logitsA, highA, lowA), (logitsB, highB, lowB)) = ForwardPair(Teacher, uA, uB);
            plA = PseudoLabels.LargestComponentPerSlice(ClassIndex.Of(logitsA), _numClasses);
            plB = PseudoLabels.LargestComponentPerSlice(ClassIndex.Of(logitsB), _numClasses);
            tA = (highA, lowA); tB = (highB, lowB);
        }
        var mask = Masks(k, h, w, rng, images.device);
        var (xUnl, xLab) = Mix(lA, lB, uA, uB, mask);
        // the reference's two student passes (BN statistics per mixed batch), run as one; each gives logits and features
        var ((lu, hu, fu), (ll, hl, fl)) = ForwardPair(Student, xUnl, xLab);
        var (dice, ce) = MixedLoss(lu, ll, yA, yB, plA, plB, mask, _uWeight);
        var (lowLoss, highLoss) = HighLowConsistency(new[] { (hu, fu), (hl, fl) }, new[] { tA, tB });
        var seg = (dice + ce) / 2;
        var loss = seg + _hlWeight * (lowLoss + highLoss) / 2;
        return new MethodStep(loss, new Dictionary<string, Tensor> { ["seg"] = seg, ["low"] = lowLoss, ["high"] = highLoss });
    }

    /// <summary>Two forward calls with features, run as one pass in which batch norm keeps each call's statistics
    /// (<see cref="BatchNormGroups"/>).</summary>
    static ((Tensor, Tensor, Tensor), (Tensor, Tensor, Tensor)) ForwardPair(Segmenter2D net, Tensor a, Tensor b)
    {
        var r = BatchNormGroups.ForwardAll(x => { var (l, h, f) = net.ForwardWithFeatures(x); return new[] { l, h, f }; }, a, b);
        return ((r[0][0], r[0][1], r[0][2]), (r[1][0], r[1][1], r[1][2]));
    }

    public void AfterOptimizerStep(TrainingContext context)
    {
        if (context.Iteration >= _pretrain) Ema.Update(Teacher, Student, _emaDecay, includeBuffers: true);
    }

    public void Dispose() { Student.Dispose(); Teacher.Dispose(); }
}
