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
/// Inside <see cref="BatchNormGroups.Split"/> a training forward normalises each of the equal batches concatenated
/// along dimension 0 by its own statistics and updates the running statistics once per batch, in order: exactly what
/// separate forward calls on each batch compute, while every other layer runs once on the whole concatenation.
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
        int groups = BatchNormGroups.Current;
        if (!training || groups == 1) return Normalize(input);
        if (input.shape[0] % groups != 0)
            throw new ArgumentException($"BatchNorm{_spatialDims}d: a batch of {input.shape[0]} does not split into {groups} equal batches");
        using var scope = NewDisposeScope();
        var parts = input.chunk(groups, 0);
        var outputs = new Tensor[groups];
        for (int g = 0; g < groups; g++) outputs[g] = Normalize(parts[g]);
        return cat(outputs, 0).MoveToOuterDisposeScope();
    }

    Tensor Normalize(Tensor input)
    {
        if (training) num_batches_tracked!.add_(_one, _one);
        return nn.functional.batch_norm(input, running_mean, running_var, weight, bias, training, momentum ?? 0.1, eps);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _one.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// Runs one forward pass over several independent batches as if each had its own forward call. BCP and M3HL feed
/// their networks two mixed batches in two calls, each normalised by its own batch-norm statistics (as their
/// references do); at the table's 2+2 images a 2-image convolution costs a third more per image than a 4-image one.
/// Within <c>using (BatchNormGroups.Split(2)) net.forward(cat(a, b))</c> every convolution runs once over both batches
/// and every <see cref="StableBatchNorm"/> normalises each half by its own statistics, so outputs, gradients and
/// running statistics are those of <c>net.forward(a)</c> then <c>net.forward(b)</c> (up to float summation order).
/// Only layers that mix images of a batch would need it, and in these networks batch norm is the only one. The
/// setting is per thread, as a forward runs on its caller's thread.
/// </summary>
public static class BatchNormGroups
{
    [ThreadStatic] static int t_groups;

    /// <summary>How many equal batches a training forward on this thread holds (1 outside a split).</summary>
    public static int Current => t_groups < 1 ? 1 : t_groups;

    public static IDisposable Split(int groups)
    {
        if (groups < 1) throw new ArgumentOutOfRangeException(nameof(groups), "at least one batch");
        var previous = t_groups;
        t_groups = groups;
        return new Restore(previous);
    }

    /// <summary>Forward of <paramref name="batches"/> (equal sizes) in one pass with per-batch statistics; the
    /// result is split back, one output per batch.</summary>
    public static Tensor[] Forward(Func<Tensor, Tensor> forward, params Tensor[] batches) =>
        ForwardAll(x => new[] { forward(x) }, batches).Select(o => o[0]).ToArray();

    /// <summary>As <see cref="Forward"/> for a forward with several outputs (logits and features): result[b][k] is
    /// batch b's share of output k.</summary>
    public static Tensor[][] ForwardAll(Func<Tensor, Tensor[]> forward, params Tensor[] batches)
    {
        using var scope = NewDisposeScope();
        Tensor[] all;
        using (Split(batches.Length)) all = forward(cat(batches, 0));
        var parts = all.Select(t => t.chunk(batches.Length, 0)).ToArray();
        foreach (var part in parts) foreach (var o in part) o.MoveToOuterDisposeScope();
        return Enumerable.Range(0, batches.Length).Select(b => parts.Select(part => part[b]).ToArray()).ToArray();
    }

    sealed class Restore(int previous) : IDisposable
    {
        bool _done;
        public void Dispose() { if (_done) return; _done = true; t_groups = previous; }
    }
}

/// <summary>Factory methods named like TorchSharp's, so a network reads as before.</summary>
public static class Norms
{
    public static StableBatchNorm BatchNorm2d(long features) => new(features, 2);
    public static StableBatchNorm BatchNorm3d(long features) => new(features, 3);
}
