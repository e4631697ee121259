using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Runtime;

/// <summary>A run that stopped because a loss or gradient became NaN or infinite; nothing was saved from that step on.</summary>
public sealed class TrainingDivergedException : Exception
{
    public TrainingDivergedException(string message) : base(message) { }
}

/// <summary>
/// Non-finite numbers never reach the weights or a checkpoint: every iteration's loss and gradients are checked before
/// the optimizer step (not only logged ones), a checkpoint is never written from non-finite weights, and a checkpoint
/// with non-finite weights is refused when loaded for evaluation or prediction.
/// </summary>
public static class NumericGuard
{
    /// <summary>Throws <see cref="TrainingDivergedException"/> when the loss or any gradient holds NaN or ±∞. One sum
    /// per parameter on the parameters' device and one host sync per iteration (the only one of a training step that
    /// does not log: the check must precede the optimizer step); only when that total is not finite, the exact check
    /// (max |g| per parameter, which cannot overflow) and its message.</summary>
    public static void EnsureFiniteStep(Tensor loss, IEnumerable<Tensor> parameters, long iteration)
    {
        using var scope = NewDisposeScope();
        var l0 = loss.detach().to_type(ScalarType.Float32).abs().reshape(1);
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToArray();
        // First one plain sum per gradient (no |g| copy; 0.2 against 0.8 ms for the UNet's 82): NaN or ±∞ anywhere
        // makes the total NaN or ±∞, so a finite total proves every value finite. A non-finite total (or one that
        // merely overflowed) goes to the exact max |g| check below, which alone decides.
        if (float.IsFinite(cat(grads.Select(g => g.sum().to_type(ScalarType.Float32).reshape(1)).Prepend(l0).ToArray()).sum().item<float>())) return;
        var maxima = grads.Select(g => g.abs().max().to_type(ScalarType.Float32).reshape(1)).ToArray();
        // NaN propagates through max, so one finite maximum means all are finite
        if (float.IsFinite(cat(maxima.Prepend(l0).ToArray()).max().item<float>())) return;
        float l = loss.detach().item<float>();
        if (!float.IsFinite(l))
            throw new TrainingDivergedException($"training diverged: the loss is {l} at iteration {iteration + 1}; nothing from this iteration was saved (lower the learning rate or check the data)");
        if (maxima.Length == 0) return;
        float m = stack(maxima).max().item<float>();
        if (!float.IsFinite(m))
            throw new TrainingDivergedException($"training diverged: a gradient is {m} at iteration {iteration + 1} (loss {l}); nothing from this iteration was saved (lower the learning rate or check the data)");
    }

    /// <summary>The first parameter or floating-point buffer of <paramref name="module"/> that holds a NaN or ±∞, or null.</summary>
    public static string? FirstNonFinite(nn.Module module)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (name, p) in module.named_parameters())
            if (!p.isfinite().all().item<bool>()) return name;
        foreach (var (name, b) in module.named_buffers())
            if (b.is_floating_point() && !b.isfinite().all().item<bool>()) return name;
        return null;
    }

    /// <summary>Refuses to write a checkpoint of non-finite weights.</summary>
    public static void EnsureFiniteWeights(nn.Module module, string path)
    {
        if (FirstNonFinite(module) is string name)
            throw new TrainingDivergedException($"not writing '{path}': {name} holds NaN or infinite values (the run diverged)");
    }

    /// <summary>Refuses a loaded checkpoint whose network holds non-finite weights.</summary>
    public static void EnsureFiniteCheckpoint(nn.Module network, string path)
    {
        if (FirstNonFinite(network) is string name)
            throw new InvalidDataException($"checkpoint '{path}': {name} holds NaN or infinite values (written by a diverged run); it cannot be used");
    }
}
