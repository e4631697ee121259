using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

/// <summary>
/// LeakyReLU whose negative slope is one Scalar owned by the module. TorchSharp 0.107's LeakyReLU converts the double
/// slope into a temporary Scalar on every call and nothing keeps it alive during the native call: when a garbage
/// collection runs meanwhile (the data loader's threads allocate all the time) its finalizer frees the native Scalar
/// under libtorch, which then fails with "Expected false to be true ... toFloat" (dotnet/TorchSharp#1434, #1496).
/// Holding the Scalar here makes the slope live as long as the network. Same values, in place or not.
/// </summary>
public sealed class StableLeakyReLU : Module<Tensor, Tensor>
{
    readonly Scalar _slope;
    readonly bool _inplace;

    public StableLeakyReLU(double negativeSlope = 0.01, bool inplace = false) : base(nameof(StableLeakyReLU))
    {
        _slope = negativeSlope.ToScalar();
        NegativeSlope = negativeSlope;
        _inplace = inplace;
    }

    public double NegativeSlope { get; }
    public bool Inplace => _inplace;

    public override Tensor forward(Tensor x) => _inplace ? x.leaky_relu_(_slope).alias() : x.leaky_relu(_slope);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _slope.Dispose();
        base.Dispose(disposing);
    }
}
