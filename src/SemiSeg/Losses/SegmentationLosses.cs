using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Losses;

/// <summary>Segmentation losses of the SSL4MIS lineage, with an optional per-pixel weight / ignore mask.</summary>
public static class SegmentationLosses
{
    /// <summary>Cross-entropy of logits (B, C, H, W) against integer targets (B, H, W). With <paramref name="weight"/>
    /// (B, H, W), pixels are weighted and the sum is divided by the weight sum (0-weight = ignored pixels).
    /// Targets equal to <paramref name="ignoreIndex"/> are ignored.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, Tensor? weight = null, long ignoreIndex = -100)
    {
        if (weight is null) return functional.cross_entropy(logits, target, ignore_index: ignoreIndex);
        using var scope = NewDisposeScope();
        var perPixel = functional.cross_entropy(logits, target, ignore_index: ignoreIndex, reduction: Reduction.None);
        var w = weight.to_type(perPixel.dtype);
        if (ignoreIndex >= 0) w = w * target.ne(ignoreIndex).to_type(w.dtype);
        return ((perPixel * w).sum() / (w.sum() + 1e-8)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Dice loss with squared denominators over the whole batch (SSL4MIS DiceLoss, BCP mask_DiceLoss), background
    /// included, averaged over classes: 1 − (2Σ p·t·w + 1e-5) / (Σ p²·w + Σ t²·w + 1e-5) per class.
    /// <paramref name="probs"/> are softmax probabilities (B, C, H, W) or (B, C, D, H, W); <paramref name="target"/> integer labels
    /// (B, H, W) or (B, D, H, W); <paramref name="weight"/> optional (B, H, W) per-pixel weights; pixels whose target equals
    /// <paramref name="ignoreIndex"/> get weight 0.
    /// </summary>
    public static Tensor Dice(Tensor probs, Tensor target, Tensor? weight = null, long ignoreIndex = -100)
    {
        using var scope = NewDisposeScope();
        long c = probs.shape[1];
        var t = target;
        Tensor? w = weight?.to_type(probs.dtype);
        if (ignoreIndex >= 0)
        {
            var keep = target.ne(ignoreIndex);
            t = target.masked_fill(keep.logical_not(), 0);
            var k = keep.to_type(probs.dtype);
            w = w is null ? k : w * k;
        }
        // (B, [D,] H, W, C) → (B, C, [D,] H, W): the same loss for slices and volumes
        long nd = probs.dim();
        var order = new long[nd]; order[0] = 0; order[1] = nd - 1;
        for (long i = 2; i < nd; i++) order[i] = i - 1;
        var onehot = functional.one_hot(t, c).permute(order).to_type(probs.dtype);
        var dims = Enumerable.Range(0, (int)nd).Where(i => i != 1).Select(i => (long)i).ToArray();
        Tensor inter, psum, tsum;
        if (w is null)
        {
            inter = (probs * onehot).sum(dims);
            psum = (probs * probs).sum(dims);
            tsum = onehot.sum(dims); // one-hot: t² = t
        }
        else
        {
            var wu = w.unsqueeze(1);
            inter = (probs * onehot * wu).sum(dims);
            psum = (probs * probs * wu).sum(dims);
            tsum = (onehot * wu).sum(dims);
        }
        var dice = (2 * inter + 1e-5) / (psum + tsum + 1e-5);
        return (1 - dice).mean().MoveToOuterDisposeScope();
    }

    /// <summary>The lineage's supervised loss: 0.5 · (CE(logits) + Dice(softmax(logits))).</summary>
    public static Tensor CeDice(Tensor logits, Tensor target, Tensor? weight = null, long ignoreIndex = -100)
    {
        using var scope = NewDisposeScope();
        return CeDiceWithProbs(logits, functional.softmax(logits, 1), target, weight, ignoreIndex).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="CeDice(Tensor, Tensor, Tensor?, long)"/> with the softmax already taken (methods that reuse
    /// the whole batch's softmax for a consistency term, as the references do).</summary>
    public static Tensor CeDiceWithProbs(Tensor logits, Tensor probs, Tensor target, Tensor? weight = null, long ignoreIndex = -100) =>
        0.5 * (CrossEntropy(logits, target, weight, ignoreIndex) + Dice(probs, target, weight, ignoreIndex));
}
