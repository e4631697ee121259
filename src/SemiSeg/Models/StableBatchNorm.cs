using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SemiSeg.Models;

/// <summary>
/// BatchNorm (1d/2d/3d) with the same parameters, buffers and state-dict names as TorchSharp's, whose running-count
/// update uses a Scalar the module owns. TorchSharp 0.107's BatchNorm.forward calls <c>num_batches_tracked.add_(1)</c>,
/// which makes two temporary native Scalars that nothing keeps alive during the native call; a collection meanwhile
/// lets the finalizer free them under libtorch, which then fails with "For integral input tensors, argument alpha must
/// not be a floating point number" (the crash of ordinary training at --threads 1). Same values as TorchSharp's module:
/// PyTorch's momentum 0.1, eps 1e-5, affine, running statistics.
/// </summary>
public sealed class StableBatchNorm : NormBase
{
    readonly int _spatialDims;
    readonly Scalar _one = 1L.ToScalar();

    public StableBatchNorm(long features, int spatialDims, double eps = 1e-5, double momentum = 0.1)
        : base(features, eps, momentum, affine: true, track_running_stats: true, device: null, dtype: null, name: $"BatchNorm{spatialDims}d")
        => _spatialDims = spatialDims;

    protected override void ValidateInputDimensions(Tensor input)
    {
        if (input.dim() != _spatialDims + 2)
            throw new ArgumentException($"BatchNorm{_spatialDims}d expects a {_spatialDims + 2}-D input, got {input.dim()}-D");
    }

    public override Tensor forward(Tensor input)
    {
        ValidateInputDimensions(input);
        if (training) num_batches_tracked!.add_(_one, _one);
        return nn.functional.batch_norm(input, running_mean, running_var, weight, bias, training, momentum ?? 0.1, eps);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _one.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>Factory methods named like TorchSharp's, so a network reads as before.</summary>
public static class Norms
{
    public static StableBatchNorm BatchNorm2d(long features) => new(features, 2);
    public static StableBatchNorm BatchNorm3d(long features) => new(features, 3);
}
