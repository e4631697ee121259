using SemiSeg.Losses;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods;

/// <summary>
/// UniMatch (Yang et al., CVPR 2023), the medical (ACDC) variant of LiheYoung/UniMatch more-scenarios/medical:
/// the same model (no EMA) predicts the weak view of the unlabeled images, hard pseudo-labels are kept where its
/// confidence reaches 0.95 (others ignored through the Dice mask, never turned into background); two strong views
/// (colour jitter p 0.8, Gaussian blur p 0.5, each with its own CutMix box, p 0.5) and a feature-perturbed pass
/// (Dropout2d 0.5 on all encoder features) learn from them with Dice only:
/// loss = (L_x + 0.25·L_s1 + 0.25·L_s2 + 0.5·L_fp) / 2, L_x = (CE + Dice) / 2.
/// Deliberate differences: the CutMix partner of an unlabeled image is the next image of the same unlabeled batch
/// (the reference draws a second unlabeled batch), and its pseudo-label comes from an eval-mode pass over the weak
/// views as in the reference; strong views are made from the loader's weak views on the fly (strong = weak +
/// appearance changes, the same composition as the reference pipeline).
/// </summary>
public sealed class UniMatchMethod : ISegmentationMethod
{
    readonly double _threshold, _wS, _wFp, _fpDropout, _cutmixP;

    public UniMatchMethod(UNetConfig config, MethodSettings settings)
    {
        _threshold = settings.Double("conf_thresh", 0.95);
        _wS = settings.Double("strong_weight", 0.25);
        _wFp = settings.Double("fp_weight", 0.5);
        _fpDropout = settings.Double("fp_dropout", 0.5);
        _cutmixP = settings.Double("cutmix_p", 0.5);
        Network = Segmenter2D.Create(config);
    }

    public string Name => "unimatch";
    public Segmenter2D Network { get; }
    public Segmenter2D InferenceNetwork => Network;
    public IReadOnlyList<Module> TrainableModules => new Module[] { Network };
    public IReadOnlyList<Module> StatefulModules => new Module[] { Network };

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        long nu = images.shape[0] - labeledCount;
        if (nu == 0)
        {
            var l = SegmentationLosses.CeDice(Network.forward(images), labels);
            return new MethodStep(l, new Dictionary<string, Tensor> { ["sup"] = l });
        }
        var rng = new Random(Seeds.Mix(context.Iteration, 0x0417));
        var xl = images.narrow(0, 0, labeledCount);
        var xw = images.narrow(0, labeledCount, nu);
        long h = images.shape[2], w = images.shape[3];
        var order = Enumerable.Range(0, (int)nu).Select(i => (long)((i + 1) % nu)).ToArray();
        var partner = tensor(order, device: images.device);

        // pseudo-labels of the CutMix partners, eval mode, no gradient (reference: pred_u_w_mix)
        Tensor mixLabel, mixConf;
        using (no_grad())
        {
            Network.eval();
            var pm = functional.softmax(Network.forward(xw.index_select(0, partner)), 1);
            (mixConf, mixLabel) = pm.max(1);
            Network.train();
        }
        Tensor Box() => tensor(Enumerable.Range(0, (int)nu).SelectMany(_ => Perturbations.CutMixBox((int)h, (int)w, rng, _cutmixP)).ToArray(), new[] { nu, h, w }, device: images.device);
        var box1 = Box(); var box2 = Box();
        Tensor StrongMixed(Tensor box)
        {
            var s = Perturbations.Strong(xw, rng);
            var sPartner = Perturbations.Strong(xw.index_select(0, partner), rng);
            var b = box.unsqueeze(1);
            var mixed = s * (1 - b) + sPartner * b;
            return MemoryLayout.IsChannelsLast(images) ? MemoryLayout.ToChannelsLast(mixed) : mixed;
        }
        var xs1 = StrongMixed(box1); var xs2 = StrongMixed(box2);

        var (preds, predsFp) = Network.ForwardWithFeaturePerturbation(cat(new[] { xl, xw }, 0), _fpDropout);
        var predX = preds.narrow(0, 0, labeledCount);
        var predUw = preds.narrow(0, labeledCount, nu).detach();
        var predUwFp = predsFp.narrow(0, labeledCount, nu);
        var predS = Network.forward(cat(new[] { xs1, xs2 }, 0));
        var predS1 = predS.narrow(0, 0, nu); var predS2 = predS.narrow(0, nu, nu);

        var (confW, maskW) = functional.softmax(predUw, 1).max(1);
        (Tensor label, Tensor conf) Cut(Tensor box)
        {
            var keepOwn = box.eq(0);
            return (maskW.where(keepOwn, mixLabel), confW.where(keepOwn, mixConf));
        }
        var (m1, c1) = Cut(box1); var (m2, c2) = Cut(box2);
        Tensor Confident(Tensor conf) => conf.ge(_threshold).to_type(ScalarType.Float32);

        var lossX = SegmentationLosses.CeDice(predX, labels);
        var lossS1 = SegmentationLosses.Dice(functional.softmax(predS1, 1), m1, Confident(c1));
        var lossS2 = SegmentationLosses.Dice(functional.softmax(predS2, 1), m2, Confident(c2));
        var lossFp = SegmentationLosses.Dice(functional.softmax(predUwFp, 1), maskW, Confident(confW));
        var loss = (lossX + _wS * lossS1 + _wS * lossS2 + _wFp * lossFp) / 2.0;
        return new MethodStep(loss, new Dictionary<string, Tensor>
        {
            ["sup"] = lossX, ["s1"] = lossS1, ["s2"] = lossS2, ["fp"] = lossFp, ["confident"] = Confident(confW).mean(),
        });
    }

    public void Dispose() => Network.Dispose();
}
