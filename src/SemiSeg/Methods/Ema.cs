using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods;

/// <summary>An exponential moving average of a student's weights.</summary>
public static class Ema
{
    /// <summary>A teacher that starts as an exact copy of the student and never receives gradients.</summary>
    public static Models.Segmenter2D FrozenCopy(Models.Segmenter2D student) => FrozenCopy(student, () => Models.Segmenter2D.Create(student.Config));

    /// <summary>A frozen exact copy of any network, made by <paramref name="create"/> (the same architecture).</summary>
    public static T FrozenCopy<T>(T student, Func<T> create) where T : nn.Module
    {
        var teacher = create();
        teacher.load_state_dict(student.state_dict());
        foreach (var p in teacher.parameters()) p.requires_grad_(false);
        return teacher;
    }

    /// <summary>The mean-teacher warm-up: α = min(1 − 1/(t+1), decay).</summary>
    public static double WarmupAlpha(double decay, long step) => Math.Min(1.0 - 1.0 / (step + 1), decay);

    /// <summary>
    /// teacher ← α·teacher + (1−α)·student, in place (unlike PyMIC's discarded non-in-place add). Parameters only
    /// (SSL4MIS), or the whole state dict including BN running statistics (BCP / ABD, <paramref name="includeBuffers"/>;
    /// integer buffers such as num_batches_tracked are copied).
    /// </summary>
    public static void Update(nn.Module teacher, nn.Module student, double alpha, bool includeBuffers = false)
    {
        using var noGrad = no_grad();
        // explicit Scalars, alive for the whole update (an implicit double → Scalar temporary can be finalized during
        // the native call; see Models.StableLeakyReLU)
        using var a = alpha.ToScalar();
        using var b = (1 - alpha).ToScalar();
        var tp = teacher.parameters().ToArray(); var sp = student.parameters().ToArray();
        for (int i = 0; i < tp.Length; i++) tp[i].mul_(a).add_(sp[i], alpha: b);
        if (!includeBuffers) return;
        var tb = teacher.buffers().ToArray(); var sb = student.buffers().ToArray();
        for (int i = 0; i < tb.Length; i++)
        {
            if (tb[i].is_floating_point()) tb[i].mul_(a).add_(sb[i], alpha: b);
            else tb[i].copy_(sb[i]);
        }
    }
}
