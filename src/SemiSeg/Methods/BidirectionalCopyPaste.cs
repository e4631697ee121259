using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// BCP, Bidirectional Copy-Paste (Bai et al., CVPR 2023), after DeepMed-Lab-ECNU/BCP code/ACDC_BCP_train.py.
/// Mask M: ones with a zero box of 2/3·H × 2/3·W at a random position, one box per iteration.
/// Pre-training (the first <c>pretrain_iterations</c>, 10 000 on ACDC): the labeled half-batches a, b are mixed,
/// x = a·M + b·(1−M), supervised by the equally mixed labels. Self-training: an EMA teacher (0.99, whole state dict,
/// BN statistics included) pseudo-labels the unlabeled halves (argmax, then each class's largest connected component
/// per slice); inputs x_u = u_a·M + l_a·(1−M) (a labeled patch pasted into the box of an unlabeled image) and
/// x_l = l_b·M + u_b·(1−M) (an unlabeled patch into the box of a labeled image) are supervised by the correspondingly mixed
/// targets with per-region weights (ground truth 1.0, pseudo-labels <c>u_weight</c> 0.5) in a masked Dice and a
/// masked CE; loss = (Dice + CE) / 2. <see cref="MixLoss"/> and this combination are checked to 1e-5 against our
/// Python transcription of the reference's mix_loss (tests/SemiSeg.Tests/Fixtures/fidelity/reference_losses.py).
/// The learning rate is constant, as the reference's ACDC script runs it: `semiseg train --method bcp` defaults to
/// --schedule constant (until issue 18 it defaulted to poly like every method, and the bcp rows of docs/results.md
/// were measured with poly).
/// Stage switch as the reference: the *best* (validation-selected) pre-training checkpoint is loaded into the student
/// together with its optimizer state (load_net_opt) and into the teacher (load_net) (ACDC_BCP_train.py:309, :335-336):
/// the trainer keeps stage1-best.ckpt and restores it before iteration pretrain_iterations, and this method then copies
/// the student into the teacher. Without validation volumes the last iterate continues. <c>stage2_from=last</c>
/// restores the behaviour before issue 18 (the last pre-training iterate and its momentum continue).
/// The teacher's two calls (u_a, u_b) and the student's two (x_u, x_l) each run as one forward in which every batch
/// norm normalises each call's images by their own statistics (<see cref="BatchNormGroups"/>): the same outputs and
/// running statistics as two calls, with the convolutions over 4 images at once instead of 2 twice.
/// Remaining departures: both stages run in one training run of --iterations (the reference: 10 000 pre-training plus
/// 30 000 self-training iterations, 40 000 in all), and best.ckpt is selected over both stages (the reference selects
/// the self-training's best only). Dice smoothing is 1e-5 (the reference's BCP losses use 1e-10). The box's
/// position is drawn from one more place per axis (the reference's np.random.randint(0, H − h) excludes H − h).
/// </summary>
public sealed class BidirectionalCopyPasteMethod : ISegmentationMethod, IStartsStageTwoFromBest
{
    readonly long _pretrain;
    readonly double _uWeight, _emaDecay;
    readonly int _numClasses;
    readonly bool _fromBest;

    public long StageTwoStart => _fromBest ? _pretrain : 0;

    public BidirectionalCopyPasteMethod(UNetConfig config, MethodSettings settings)
    {
        _pretrain = settings.Long("pretrain_iterations", 10000);
        _uWeight = settings.Double("u_weight", 0.5);
        _emaDecay = settings.Double("ema_decay", 0.99);
        _fromBest = settings.String("stage2_from", "best") switch
        {
            "best" => true,
            "last" => false,
            var v => throw new ArgumentException($"stage2_from must be best or last (got '{v}')"),
        };
        _numClasses = config.NumClasses;
        Student = Segmenter2D.Create(config);
        Teacher = Ema.FrozenCopy(Student);
    }

    public string Name => "bcp";
    public Segmenter2D Student { get; }
    public Segmenter2D Teacher { get; }
    public Segmenter2D InferenceNetwork => Student;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Student };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Student, Teacher };

    /// <summary>BCP's mix_loss: region M supervised by <paramref name="inside"/> with weight <paramref name="wIn"/>, the
    /// rest by <paramref name="outside"/> with weight <paramref name="wOut"/>; returns (Dice, CE).
    /// The two regions partition the pixels (<paramref name="mask"/> is 0/1, as every copy-paste mask is), so one
    /// target map (<paramref name="inside"/> where M, <paramref name="outside"/> elsewhere), one softmax, one one-hot and
    /// one per-pixel CE serve both regions, and each region's sums are one product with its weight map: the same
    /// values as the two masked Dice and two masked CE calls of the reference (SegmentationLosses.Dice and
    /// CrossEntropy with each region's mask, which the tests keep as the oracle), up to float summation order, in a
    /// third of their tensor operations. <paramref name="logits"/> (B, C, *spatial), targets and mask (B, *spatial).</summary>
    public static (Tensor dice, Tensor ce) MixLoss(Tensor logits, Tensor inside, Tensor outside, Tensor mask, double wIn, double wOut)
    {
        using var scope = NewDisposeScope();
        var inRegion = mask.ne(0);
        if (inRegion.logical_and(mask.ne(1)).any().item<bool>())
            throw new ArgumentException("BCP mix loss: the mask must be 0/1 (the copy-paste region)");
        long c = logits.shape[1];
        var target = where(inRegion, inside, outside);
        // (2, pixels): the inside region's weights, then the outside's
        var regions = stack(new[] { inRegion, inRegion.logical_not() }, 0).reshape(2, -1).to_type(logits.dtype);
        var probs = functional.softmax(logits, 1);
        var onehot = functional.one_hot(target, c).reshape(-1, c).to_type(logits.dtype);  // (pixels, C)
        var flat = probs.movedim(new long[] { 1 }, new long[] { -1 }).reshape(-1, c);      // a view in channels_last memory
        var inter = regions.mm(flat * onehot);                                               // (2, C) each
        var psum = regions.mm(flat * flat);
        var tsum = regions.mm(onehot);                                                       // one-hot: t² = t
        var dice = (1 - (2 * inter + 1e-5) / (psum + tsum + 1e-5)).mean(new long[] { 1 });
        var nll = functional.cross_entropy(logits, target, reduction: Reduction.None).reshape(-1);
        var ce = regions.mv(nll) / (regions.sum(1) + 1e-8);
        var weights = tensor(new[] { (float)wIn, (float)wOut }, device: logits.device).to_type(logits.dtype);
        return ((dice * weights).sum().MoveToOuterDisposeScope(), (ce * weights).sum().MoveToOuterDisposeScope());
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        if (labeledCount < 2) throw new ArgumentException("BCP needs at least 2 labeled images per batch (two halves to mix)");
        long h = images.shape[2], w = images.shape[3];
        var rng = new Random(Seeds.Mix(context.Iteration, 0xBC9));
        var m2d = tensor(Perturbations.BcpMask((int)h, (int)w, rng), new[] { 1L, h, w }, device: images.device);
        int half = labeledCount / 2;
        var imgA = images.narrow(0, 0, half); var imgB = images.narrow(0, half, half);
        var labA = labels.narrow(0, 0, half); var labB = labels.narrow(0, half, half);
        var m4 = m2d.unsqueeze(1);
        var mask = m2d.expand(half, h, w);
        long nu = images.shape[0] - labeledCount;

        if (context.Iteration < _pretrain || nu < 2)
        {
            // labeled copy-paste: x = a·M + b·(1−M), target likewise, both regions weight 1
            var x = imgA * m4 + imgB * (1 - m4);
            var (d, c) = MixLoss(Student.forward(x), labA, labB, mask, 1.0, 1.0);
            var l = (d + c) / 2;
            return new MethodStep(l, new Dictionary<string, Tensor> { ["dice"] = d, ["ce"] = c });
        }
        if (context.Iteration == _pretrain) Teacher.load_state_dict(Student.state_dict());

        int uhalf = (int)(nu / 2);
        var uA = images.narrow(0, labeledCount, uhalf); var uB = images.narrow(0, labeledCount + uhalf, uhalf);
        imgA = imgA.narrow(0, 0, Math.Min(half, uhalf)); imgB = imgB.narrow(0, 0, Math.Min(half, uhalf));
        labA = labA.narrow(0, 0, Math.Min(half, uhalf)); labB = labB.narrow(0, 0, Math.Min(half, uhalf));
        uA = uA.narrow(0, 0, imgA.shape[0]); uB = uB.narrow(0, 0, imgA.shape[0]);
        mask = m2d.expand(imgA.shape[0], h, w);
        Tensor plA, plB;
        using (no_grad())
        {
            var t = BatchNormGroups.Forward(Teacher.forward, uA, uB);
            plA = PseudoLabels.LargestComponentPerSlice(ClassIndex.Of(functional.softmax(t[0], 1)), _numClasses);
            plB = PseudoLabels.LargestComponentPerSlice(ClassIndex.Of(functional.softmax(t[1], 1)), _numClasses);
        }
        var xUnl = uA * m4 + imgA * (1 - m4);   // unlabeled image with a labeled patch in the box
        var xLab = imgB * m4 + uB * (1 - m4);   // labeled image with an unlabeled patch in the box
        // the reference's two forward calls, run as one with each batch's own batch-norm statistics
        var s = BatchNormGroups.Forward(Student.forward, xUnl, xLab);
        var (ud, uc) = MixLoss(s[0], plA, labA, mask, _uWeight, 1.0);
        var (ld, lc) = MixLoss(s[1], labB, plB, mask, 1.0, _uWeight);
        var loss = ((ud + ld) + (uc + lc)) / 2;
        return new MethodStep(loss, new Dictionary<string, Tensor> { ["dice"] = ud + ld, ["ce"] = uc + lc });
    }

    public void AfterOptimizerStep(TrainingContext context)
    {
        // BCP's update_model_ema: constant α over the whole state dict
        if (context.Iteration >= _pretrain) Ema.Update(Teacher, Student, _emaDecay, includeBuffers: true);
    }

    public void Dispose() { Student.Dispose(); Teacher.Dispose(); }
}
