using SemiSeg.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Methods.Volume;

/// <summary>
/// C3S3 in 3D, its reference's own setting (He et al., ICME 2025; Y-TARL/C3S3 train_LA.py, train_Pancreas.py,
/// models/vnet.py, models/ResNet34.py, utils/ContrastiveLoss.py, test_util.py): a VNet (16 filters, dropout) and
/// <see cref="ResNet34Net3D"/> (the reference's 3D ResNet-34 encoder with the VNet decoder, dropout) compete, each with
/// the reference's projector (1×1×1 conv 16→16, PReLU, 16→64) on its last decoder map. Both views are the batch
/// itself, as the reference's loaders give it (RandomCrop in the common transform, applied once, `sp_transform` only
/// ToTensor): each network runs on it twice, so the two outputs differ by dropout and nothing else. The losses are
/// <see cref="ComplementaryCompetitionMethod.ReferenceLosses"/>: selection by α·CE + (1−α)·foreground Dice (α 0.8 for
/// LA, the default; 0.5 for Pancreas), the supervised (CE + Dice)/2 of both views, view consistency along the
/// slice axis (the reference's last axis, `dim=-1` on (B, C, W, H, D) patches) at weight 1, the good student's sharpened
/// unlabeled softmax teaching the other by MSE at 0.1·sigmoid_rampup(t // 150, 40), and the per-voxel ODCL of the four
/// view pairs at weight 1 in both networks' losses; one step on v_loss + r_loss. Prediction averages both networks'
/// softmax in the sliding window (test_util.py), <c>inference=vnet</c> the VNet alone.
/// The LA protocol: 112×112×80 patches, batch 2 of which 1 labeled, 2500 iterations, SGD 0.01 momentum 0.9 weight decay
/// 1e-4 (`--schedule step --step-size 2500` is the reference's ×0.1 at 2500 = a constant rate), seed 1337
/// (configs/la/c3s3.yaml).
/// Departures: the reference's loader draws labeled and unlabeled volumes with its TwoStreamBatchSampler, here the
/// trainer's VolumeBatchSampler (the same design); one optimizer for both networks (the reference has two SGDs with equal
/// settings: the same update); no gradient checkpointing around the contrastive loss (memory, not values). The second
/// network needs a VNet as the first (<c>--network vnet</c>), as in the reference.
/// </summary>
public sealed class VolumeComplementaryCompetitionMethod : IVolumeMethod
{
    readonly double _alpha, _temperature, _consistency, _rampup, _contrastTemp, _contrastWeight, _viewWeight;
    readonly bool _ensemble;

    public VolumeComplementaryCompetitionMethod(VolumeMethodContext c)
    {
        if (c.Network3D.Kind != Net3DKind.Vnet) throw new ArgumentException("c3s3 in 3D competes a VNet with a 3D ResNet-34 network, as its reference does: use --network vnet");
        _alpha = c.Settings.Double("alpha", 0.8);
        _temperature = c.Settings.Double("sharpen_temp", 0.1);
        _consistency = c.Settings.Double("consistency", 0.1);
        _rampup = c.Settings.Double("rampup", 40);
        _contrastTemp = c.Settings.Double("contrast_temp", 0.1);
        _contrastWeight = c.Settings.Double("contrast_weight", 1.0);
        _viewWeight = c.Settings.Double("view_weight", 1.0);
        var inference = c.Settings.String("inference", "ensemble");
        if (inference is not ("ensemble" or "vnet")) throw new ArgumentException($"c3s3: inference must be ensemble or vnet (got '{inference}')");
        _ensemble = inference == "ensemble";
        NetV = new VNet(c.Network.InChannels, c.Network.NumClasses, c.Network3D.Filters, c.Network3D.Dropout);
        NetR = new ResNet34Net3D(c.Network.InChannels, c.Network.NumClasses, c.Network3D.Filters, c.Network3D.Dropout);
        ProjV = ComplementaryCompetitionMethod.Projector(c.Network3D.Filters, dims: 3);
        ProjR = ComplementaryCompetitionMethod.Projector(c.Network3D.Filters, dims: 3);
        Ensemble = new SoftmaxEnsemble(new[] { "net3d", "resnet34-3d" }, new Module<Tensor, Tensor>[] { NetV, NetR });
    }

    public string Name => "c3s3";
    public VNet NetV { get; }
    public ResNet34Net3D NetR { get; }
    public Sequential ProjV { get; }
    public Sequential ProjR { get; }
    public SoftmaxEnsemble Ensemble { get; }
    public nn.Module<Tensor, Tensor> InferenceNetwork => _ensemble ? Ensemble : NetV;
    public IReadOnlyList<Module> TrainableModules => new Module[] { NetV, NetR, ProjV, ProjR };
    public IReadOnlyList<Module> StatefulModules => new Module[] { NetV, NetR, ProjV, ProjR };

    public MethodStep Step(Tensor images, Tensor labels, int labeledCount, TrainingContext context)
    {
        var (v1, fv1) = NetV.ForwardWithFeatures(images);
        var (r1, fr1) = NetR.ForwardWithFeatures(images);
        var (v2, fv2) = NetV.ForwardWithFeatures(images);
        var (r2, fr2) = NetR.ForwardWithFeatures(images);
        var o = new ComplementaryCompetitionMethod.Outputs(v1, v2, r1, r2, ProjV.forward(fv1), ProjV.forward(fv2), ProjR.forward(fr1), ProjR.forward(fr2));
        double lambda = Ramps.Ssl4misConsistency(_consistency, context.Iteration, _rampup);
        // (B, C, D, H, W): the slice axis D is the reference's last axis
        var t = ComplementaryCompetitionMethod.ReferenceLosses(o, labels, labeledCount, _alpha, lambda, _viewWeight, _contrastWeight, _contrastTemp, _temperature, cosineDim: 2);
        return new MethodStep(t["loss"], t.Where(kv => kv.Key != "loss").ToDictionary(kv => kv.Key, kv => kv.Value));
    }

    public void Dispose() { NetV.Dispose(); NetR.Dispose(); ProjV.Dispose(); ProjR.Dispose(); Ensemble.Dispose(); }
}
