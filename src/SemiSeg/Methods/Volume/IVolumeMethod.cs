using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods.Volume;

/// <summary>A method trained on 3D patches (B, C, D, H, W) with a 3D network (VNet, 3D UNet) for inference.</summary>
public interface IVolumeMethod : ITrainableMethod
{
    /// <summary>The 3D network used for validation (sliding window), best weights and prediction.</summary>
    nn.Module<Tensor, Tensor> InferenceNetwork { get; }
    nn.Module ITrainableMethod.InferenceModule => InferenceNetwork;

    /// <summary>How many labeled and unlabeled volumes batch <paramref name="iteration"/> holds, given the run's batch size
    /// and labeled batch size. Fixed for most methods; M&amp;N's unlabeled share grows.</summary>
    (int labeled, int unlabeled) Composition(long iteration, long maxIterations, int batchSize, int labeledBatchSize) =>
        (labeledBatchSize, batchSize - labeledBatchSize);
}

/// <summary>What a 3D method is built from: the 3D network, the data's classes/channels (and the 2D UNet for methods
/// that also run one slice-wise), and its hyper-parameters.</summary>
public sealed record VolumeMethodContext(Net3DConfig Network3D, UNetConfig Network, MethodSettings Settings)
{
    public nn.Module<Tensor, Tensor> CreateNetwork() => Network3D.Create(Network.InChannels, Network.NumClasses);
}
