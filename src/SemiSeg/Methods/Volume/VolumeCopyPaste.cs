using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods.Volume;

/// <summary>
/// BCP in 3D (Bai et al., CVPR 2023), after DeepMed-Lab-ECNU/BCP code/LA_BCP_train.py.
/// Mask M (context_mask): ones with a zero box of ⌊2/3·D⌋ × ⌊2/3·H⌋ × ⌊2/3·W⌋ at a random position, one per iteration.
/// Pre-training (the first <c>pretrain_iterations</c>, 2000 on LA): labeled halves a, b mixed as x = a·M + b·(1−M) and
/// supervised by the equally mixed labels (mix_loss with both weights 1). Self-training: the EMA teacher (0.99,
/// parameters) pseudo-labels the unlabeled halves (argmax — the reference's p ≥ 0.5 for two classes — then each
/// class's largest 3D connected component, getLargestCC); x_l = l_a·M + u_a·(1−M) is supervised by l_a outside the
/// box (weight 1) and pl(u_a) inside (u_weight 0.5); x_u = u_b·M + l_b·(1−M) by pl(u_b) outside (0.5) and l_b inside
/// (1); each term is (masked Dice + masked CE) / 2.
/// Deliberate differences: both stages in one run, the teacher set to the pre-trained student at the switch (the
/// reference loads the pre-trained checkpoint into both) and the optimizer's momentum carried over; Dice over all
/// classes. The LA lineage's step schedule is `--schedule step` (×0.1 every 2500 iterations).
/// </summary>
public sealed class VolumeCopyPasteMethod : IVolumeMethod
{
    readonly long _pretrain;
    readonly double _uWeight, _emaDecay;
    readonly int _numClasses;

    public VolumeCopyPasteMethod(VolumeMethodContext c)
    {
        _pretrain = c.Settings.Long("pretrain_iterations", 2000);
        _uWeight = c.Settings.Double("u_weight", 0.5);
        _emaDecay = c.Settings.Double("ema_decay", 0.99);
        _numClasses = c.Network.NumClasses;
        Student = c.CreateNetwork();
        Teacher = Ema.FrozenCopy(Student, c.CreateNetwork);
    }

    public string Name => "bcp";
    public nn.Module<Tensor, Tensor> Student { get; }
    public nn.Module<Tensor, Tensor> Teacher { get; }
    public nn.Module<Tensor, Tensor> InferenceNetwork => Student;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Student };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Student, Teacher };

    /// <summary>BCP's 3D context mask: 1 everywhere but a zero box of ⌊2/3⌋ of each side at a random position.</summary>
    public static float[] ContextMask(int d, int h, int w, Random rng)
    {
        int bd = d * 2 / 3, bh = h * 2 / 3, bw = w * 2 / 3;
        int z0 = rng.Next(d - bd + 1), y0 = rng.Next(h - bh + 1), x0 = rng.Next(w - bw + 1);
        var m = new float[d * h * w];
        Array.Fill(m, 1f);
        for (int z = z0; z < z0 + bd; z++)
            for (int y = y0; y < y0 + bh; y++)
                Array.Clear(m, (z * h + y) * w + x0, bw);
        return m;
    }

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        if (labeledCount < 2) throw new ArgumentException("BCP needs at least 2 labeled volumes per batch (two halves to mix)");
        long d = images.shape[2], h = images.shape[3], w = images.shape[4];
        var rng = new Random(Seeds.Mix(context.Iteration, 0xBC93));
        var m3 = tensor(ContextMask((int)d, (int)h, (int)w, rng), new[] { 1L, d, h, w }, device: images.device);
        int half = labeledCount / 2;
        long nu = images.shape[0] - labeledCount;
        bool pretraining = context.Iteration < _pretrain || nu < 2;
        int n = pretraining ? half : Math.Min(half, (int)(nu / 2));
        var imgA = images.narrow(0, 0, n); var imgB = images.narrow(0, half, n);
        var labA = labels.narrow(0, 0, n); var labB = labels.narrow(0, half, n);
        var m5 = m3.unsqueeze(1);
        var mask = m3.expand(n, d, h, w);
        if (pretraining)
        {
            var x = imgA * m5 + imgB * (1 - m5);
            var (pd, pc) = BidirectionalCopyPasteMethod.MixLoss(Student.forward(x), labA, labB, mask, 1.0, 1.0);
            return new MethodStep((pd + pc) / 2, new Dictionary<string, Tensor> { ["dice"] = pd, ["ce"] = pc });
        }
        if (context.Iteration == _pretrain) Teacher.load_state_dict(Student.state_dict());
        var uA = images.narrow(0, labeledCount, n); var uB = images.narrow(0, labeledCount + (int)(nu / 2), n);
        Tensor plA, plB;
        using (no_grad())
        {
            plA = PseudoLabels.LargestComponentPerVolume(ClassIndex.Of(Teacher.forward(uA)), _numClasses);
            plB = PseudoLabels.LargestComponentPerVolume(ClassIndex.Of(Teacher.forward(uB)), _numClasses);
        }
        var xL = imgA * m5 + uA * (1 - m5);   // labeled volume, unlabeled content in the box
        var xU = uB * m5 + imgB * (1 - m5);   // unlabeled volume, labeled content in the box
        var (ld, lc) = BidirectionalCopyPasteMethod.MixLoss(Student.forward(xL), labA, plA, mask, 1.0, _uWeight);
        var (ud, uc) = BidirectionalCopyPasteMethod.MixLoss(Student.forward(xU), plB, labB, mask, _uWeight, 1.0);
        var loss = (ld + lc) / 2 + (ud + uc) / 2;
        return new MethodStep(loss, new Dictionary<string, Tensor> { ["dice"] = ld + ud, ["ce"] = lc + uc });
    }

    public void AfterOptimizerStep(TrainingContext context)
    {
        if (context.Iteration >= _pretrain) Ema.Update(Teacher, Student, _emaDecay);
    }

    public void Dispose() { Student.Dispose(); Teacher.Dispose(); }
}
