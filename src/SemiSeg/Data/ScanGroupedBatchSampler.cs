using SemiSeg.Runtime;

namespace SemiSeg.Data;

/// <summary>
/// The meta-label batches of Peng et al. (NeurIPS 2021; jizongFox/Self-paced-Contrastive-Learning
/// <c>semi_seg/data/rearr.py</c> ContrastBatchSampler): "we form batches by first randomly sampling m &lt; M volumes.
/// Then, for each sampled volume, we sample one image per partition". A scan is one volume (patient and phase, as the
/// reference's <c>patientXXX_YY</c>); a partition is the slice's position bucket in it. Every slice of such a batch
/// therefore shares its scan (patient, phase) with the scan's other partitions and its partition with the other scans,
/// so every anchor has positives of each meta-label kind. Scans are drawn without replacement within a batch (the
/// reference's <c>random.sample</c>); a scan with no slice in a partition contributes none there (its
/// <c>ValueError: continue</c>). A pure function of the batch index (seeded per batch), so runs resume exactly.
/// </summary>
public sealed class ScanGroupedBatchSampler : IBatchSampler
{
    readonly int[][][] _scanPartitionSlices; // [scan][partition] -> item indices
    readonly int _seed;

    /// <param name="items">The meta-labels of every item the loader can hand out (its unlabeled list).</param>
    /// <param name="scansPerBatch">m, the scans per batch (the reference's ACDC runs: 10).</param>
    /// <param name="partitions">Position buckets per scan (ACDC: 3).</param>
    public ScanGroupedBatchSampler(IReadOnlyList<MetaLabels> items, int scansPerBatch, int partitions, int seed)
    {
        if (partitions < 1) throw new ArgumentException($"partitions must be >= 1 (got {partitions})");
        var scans = items.Select((m, i) => (key: (m.Patient, m.Phase), part: m.PositionBucket(partitions), i))
            .GroupBy(t => t.key).OrderBy(g => g.Key.Patient, StringComparer.Ordinal).ThenBy(g => g.Key.Phase, StringComparer.Ordinal)
            .Select(g => Enumerable.Range(0, partitions).Select(p => g.Where(t => t.part == p).Select(t => t.i).ToArray()).ToArray())
            .ToArray();
        if (scans.Length == 0) throw new ArgumentException("meta-label batches: there are no training slices");
        if (scansPerBatch < 1 || scansPerBatch > scans.Length)
            throw new ArgumentException($"meta-label batches: {scansPerBatch} scans per batch asked for, the training data has {scans.Length} scans (1..{scans.Length})");
        _scanPartitionSlices = scans; ScansPerBatch = scansPerBatch; Partitions = partitions; _seed = seed;
    }

    public int ScanCount => _scanPartitionSlices.Length;
    public int ScansPerBatch { get; }
    public int Partitions { get; }
    /// <summary>The most slices a batch holds (every drawn scan has a slice in every partition).</summary>
    public int MaxBatchSize => ScansPerBatch * Partitions;

    public (int[] labeled, int[] unlabeled) Batch(long b)
    {
        var rng = new Random(Seeds.Mix(_seed, 0x5CA9, b));
        var order = Enumerable.Range(0, _scanPartitionSlices.Length).ToArray();
        // partial Fisher-Yates: the first m of a uniform permutation are m scans drawn without replacement
        for (int k = 0; k < ScansPerBatch; k++) { int j = rng.Next(k, order.Length); (order[k], order[j]) = (order[j], order[k]); }
        var picked = new List<int>(MaxBatchSize);
        for (int k = 0; k < ScansPerBatch; k++)
            foreach (var slices in _scanPartitionSlices[order[k]])
                if (slices.Length > 0) picked.Add(slices[rng.Next(slices.Length)]);
        return (Array.Empty<int>(), picked.ToArray());
    }
}
