using System.Collections.Concurrent;
using System.Diagnostics;
using SemiSeg.Runtime;

namespace SemiSeg.Data;

/// <summary>
/// The SSL4MIS TwoStreamBatchSampler as a pure function of the batch index (so an interrupted run resumes on exactly
/// the batches it would have seen): the labeled part walks seeded permutations of the labeled items, one per epoch,
/// dropping an epoch's incomplete tail like the reference's grouper (when there are fewer labeled items than
/// labeled_bs, epochs are chained instead); the unlabeled part walks an endless chain of seeded permutations. With an
/// unlabeled batch size of 0 it is a plain fully-supervised sampler.
/// </summary>
public sealed class TwoStreamBatchSampler : IBatchSampler
{
    readonly int _nLabeled;
    readonly PermutationChain _labeledChain, _unlabeledChain;

    public TwoStreamBatchSampler(int nLabeled, int nUnlabeled, int labeledBatch, int unlabeledBatch, int seed)
    {
        if (nLabeled <= 0) throw new ArgumentException("the labeled set is empty: at least one labeled item is needed");
        if (labeledBatch <= 0) throw new ArgumentException($"labeled batch size must be positive (got {labeledBatch})");
        if (unlabeledBatch < 0) throw new ArgumentException($"unlabeled batch size must be >= 0 (got {unlabeledBatch})");
        if (unlabeledBatch > 0 && nUnlabeled <= 0) throw new ArgumentException("the unlabeled set is empty but the batch asks for unlabeled items");
        _nLabeled = nLabeled; LabeledBatch = labeledBatch; UnlabeledBatch = unlabeledBatch;
        _labeledChain = new PermutationChain(nLabeled, seed, 0);
        _unlabeledChain = new PermutationChain(nUnlabeled, seed, 1);
    }

    public int LabeledBatch { get; }
    public int UnlabeledBatch { get; }

    /// <summary>Indices of batch <paramref name="b"/>: labeled indices, then unlabeled indices.</summary>
    public (int[] labeled, int[] unlabeled) Batch(long b)
    {
        var l = new int[LabeledBatch];
        if (_nLabeled >= LabeledBatch)
        {
            long perEpoch = _nLabeled / LabeledBatch;
            long epoch = b / perEpoch; int off = (int)(b % perEpoch) * LabeledBatch;
            var p = _labeledChain.Epoch(epoch);
            Array.Copy(p, off, l, 0, LabeledBatch);
        }
        else for (int i = 0; i < l.Length; i++) l[i] = _labeledChain.At(b * LabeledBatch + i);
        var u = new int[UnlabeledBatch];
        for (int i = 0; i < u.Length; i++) u[i] = _unlabeledChain.At(b * UnlabeledBatch + i);
        return (l, u);
    }
}
