using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SemiSeg.Training;

/// <summary>
/// Compares the float32 gradients of a network with the same network evaluated in float64 (libtorch's reference CPU
/// kernels: oneDNN runs no float64 convolution), with the float32 pass's piecewise choices pinned in the float64 pass.
/// <para>Why pinning: a LeakyReLU/ReLU input within rounding distance of 0, or a max-pool window with two near-equal
/// values, takes a different branch in float32 than in float64; one such flip changes a parameter's gradient by up to a
/// few percent (measured on the 2D UNet: a 1e-7 relative perturbation of the input moved libtorch's own reference path
/// from 4e-6 to 2e-2 away from float64). That is the network's non-differentiability, not an error of the kernels, and
/// no bound on float32 rounding covers it. So the float32 pass records each activation's sign pattern and each pool's
/// arg-max, and the float64 pass uses them: both then compute the same smooth function and only rounding separates
/// them.</para>
/// <para>The bound (<see cref="Bound"/>): each backward value is a chain of about D = 60 reductions (forward and
/// backward of ~20 convolution/BN layers) of length K ≤ 9·512; with float32's unit roundoff u = 2^-24 and rounding
/// errors that add like a random walk, a relative error of about D·√K·u ≈ 60·68·6e-8 = 2.4e-4 per gradient tensor,
/// times a small factor for BatchNorm's backward (which subtracts two means of the incoming gradient). 1e-3 leaves
/// that margin; the kernels measured here stay below 2e-5, and a wrong kernel (a race, a padded channel read as garbage)
/// shows as 1e-2 to NaN.</para>
/// </summary>
public static class GradientCheck
{
    public const double Bound = 1e-3;

    /// <summary>Relative L2 error per parameter of the float32 gradients against float64 ones, and the worst one. A
    /// parameter whose exact gradient vanishes carries only rounding noise in both precisions (a convolution bias in
    /// front of BatchNorm: BN subtracts the batch mean, so its gradient is 0 up to rounding, ~1e-9 of the others), so
    /// every error is measured against at least 1% of the largest gradient norm of the network.</summary>
    public sealed record Result(IReadOnlyDictionary<string, double> Errors, string WorstParameter, double Worst, float Loss);

    /// <summary>
    /// One loss + backward of <paramref name="net32"/> (float32, as configured: layout, threads, kernels) on
    /// <paramref name="input"/>, against a float64 copy made by <paramref name="create"/> with the same weights.
    /// <paramref name="loss"/> maps logits and labels to a scalar. Dropout must be off in both.
    /// </summary>
    public static Result Compare<TNet>(TNet net32, Func<TNet> create, Tensor input, Tensor labels, Func<Tensor, Tensor, Tensor> loss,
        Func<Tensor, Tensor>? layout = null) where TNet : nn.Module<Tensor, Tensor>
    {
        using var net64 = create();
        net64.load_state_dict(net32.state_dict());
        net64.to(ScalarType.Float64);
        net32.train(); net64.train();
        foreach (var p in net32.parameters()) p.grad = null;

        var pins = new Pins();
        var hooks32 = pins.Record(net32);
        Tensor l32;
        try
        {
            using var x32 = layout?.Invoke(input) ?? input.alias();
            l32 = loss(net32.call(x32), labels);
            l32.backward();
        }
        finally { foreach (var h in hooks32) h(); }
        var hooks64 = pins.Apply(net64);
        try
        {
            using var x64 = input.to(ScalarType.Float64);
            loss(net64.call(x64), labels).backward();
        }
        finally { foreach (var h in hooks64) h(); pins.Dispose(); }

        var grads32 = net32.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad);
        var grads64 = net64.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad);
        double largest = grads64.Values.Where(g => g is not null).Max(g => g!.norm().item<double>());
        var errors = new Dictionary<string, double>();
        foreach (var (name, g64) in grads64)
        {
            if (g64 is null) continue;
            var g32 = grads32[name] ?? throw new InvalidOperationException($"{name} has no float32 gradient");
            double denom = Math.Max(g64.norm().item<double>(), 1e-2 * largest);
            double e = (g32.to(ScalarType.Float64) - g64).norm().item<double>() / denom;
            errors[name] = double.IsFinite(e) ? e : double.PositiveInfinity;
        }
        var worst = errors.MaxBy(kv => kv.Value);
        return new Result(errors, worst.Key, worst.Value, l32.item<float>());
    }

    /// <summary>The piecewise choices of one float32 pass, in call order.</summary>
    sealed class Pins : IDisposable
    {
        readonly List<Tensor> _masks = new(), _indices = new();

        static IEnumerable<nn.Module> Leaves(nn.Module net) => net.modules().Where(m => m is Models.StableLeakyReLU or ReLU or MaxPool2d);

        public List<Action> Record(nn.Module net)
        {
            var removers = new List<Action>();
            foreach (var m in Leaves(net))
            {
                var mm = (nn.Module<Tensor, Tensor>)m;
                if (m is MaxPool2d pool)
                {
                    removers.Add(mm.register_forward_hook((_, x, y) =>
                    {
                        using var noGrad = no_grad();
                        var (_, idx) = nn.functional.max_pool2d_with_indices(x, new long[] { 2, 2 }, new long[] { 2, 2 });
                        _indices.Add(idx.DetachFromDisposeScope());
                        return y;
                    }).remove);
                }
                else
                {
                    if (m is Models.StableLeakyReLU { Inplace: true })
                        throw new ArgumentException("GradientCheck needs a network without in-place activations");
                    removers.Add(mm.register_forward_pre_hook((_, x) =>
                    {
                        using var noGrad = no_grad();
                        _masks.Add(x.gt(0).DetachFromDisposeScope());
                        return x;
                    }).remove);
                }
            }
            return removers;
        }

        public List<Action> Apply(nn.Module net)
        {
            int mi = 0, pi = 0;
            var removers = new List<Action>();
            foreach (var m in Leaves(net))
            {
                var mm = (nn.Module<Tensor, Tensor>)m;
                double slope = m is Models.StableLeakyReLU s ? s.NegativeSlope : 0;
                if (m is MaxPool2d)
                    removers.Add(mm.register_forward_hook((_, x, y) =>
                    {
                        var idx = _indices[pi++];
                        return x.flatten(2).gather(2, idx.flatten(2)).view(y.shape);
                    }).remove);
                else
                    removers.Add(mm.register_forward_hook((_, x, y) =>
                    {
                        var mask = _masks[mi++];
                        return where(mask, x, x * slope);
                    }).remove);
            }
            return removers;
        }

        public void Dispose()
        {
            foreach (var t in _masks.Concat(_indices)) t.Dispose();
        }
    }
}
