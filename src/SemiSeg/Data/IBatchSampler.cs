namespace SemiSeg.Data;

/// <summary>Which items make batch b: indices into the loader's labeled list, then into its unlabeled list. A pure
/// function of b, so an interrupted run resumes on exactly the batches it would have seen. Implementations:
/// <see cref="TwoStreamBatchSampler"/> (SSL4MIS labeled + unlabeled streams) and <see cref="ScanGroupedBatchSampler"/>
/// (Peng et al.'s meta-label batches).</summary>
public interface IBatchSampler
{
    (int[] labeled, int[] unlabeled) Batch(long b);
}
