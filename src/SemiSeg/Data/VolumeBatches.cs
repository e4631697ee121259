using SemiSeg.Runtime;

namespace SemiSeg.Data;

/// <summary>
/// Which volumes make up 3D batch b, as a pure function of b (an interrupted run resumes on the batches it would have
/// seen). The labeled and unlabeled streams each walk an endless chain of seeded permutations of their cases, and each
/// batch owns <see cref="Slots"/> consecutive positions of each stream, of which it takes as many as the composition
/// asks for. The composition may change with b (M&amp;N's growing unlabeled share) without changing any other batch.
/// </summary>
public sealed class VolumeBatchSampler
{
    readonly int _nUnlabeled;
    readonly Func<long, (int labeled, int unlabeled)> _composition;
    readonly PermutationChain _labeled, _unlabeled;

    public VolumeBatchSampler(int nLabeled, int nUnlabeled, int slots, Func<long, (int labeled, int unlabeled)> composition, int seed)
    {
        if (nLabeled <= 0) throw new ArgumentException("the labeled set is empty: at least one labeled volume is needed");
        if (slots <= 0) throw new ArgumentException($"batch size must be positive (got {slots})");
        _nUnlabeled = nUnlabeled; Slots = slots; _composition = composition;
        _labeled = new PermutationChain(nLabeled, seed, 10);
        _unlabeled = new PermutationChain(nUnlabeled, seed, 11);
    }

    public int Slots { get; }

    /// <summary>Case indices of batch <paramref name="b"/>: labeled, then unlabeled.</summary>
    public (int[] labeled, int[] unlabeled) Batch(long b)
    {
        var (nl, nu) = _composition(b);
        if (nl < 0 || nu < 0 || nl + nu > Slots || nl + nu == 0)
            throw new InvalidOperationException($"batch {b}: composition {nl} labeled + {nu} unlabeled does not fit a batch of {Slots}");
        if (nu > 0 && _nUnlabeled == 0) throw new ArgumentException("the batch asks for unlabeled volumes but the unlabeled set is empty");
        // batch b owns positions b·Slots .. b·Slots + Slots − 1 of each chain
        return (Enumerable.Range(0, nl).Select(i => _labeled.At(b * Slots + i)).ToArray(),
                Enumerable.Range(0, nu).Select(i => _unlabeled.At(b * Slots + i)).ToArray());
    }
}

/// <summary>One 3D batch: images (B, 1, D, H, W) labeled first, labels (B_l, D, H, W).</summary>
public sealed class VolumeBatch
{
    public required float[] Images { get; init; }
    public required long[] Labels { get; init; }
    public required int LabeledCount { get; init; }
    public required int Count { get; init; }
    public required (int d, int h, int w) Patch { get; init; }
    public required CaseRef[] Cases { get; init; }
}

/// <summary>
/// Loads 3D batches on background threads, a few ahead, each item with its own seeded generator (seed, batch, slot):
/// rotation/flip and a random crop to the patch (<see cref="VolumeAugment"/>), the LA lineage's augmentation. Volumes
/// are decoded once and kept.
/// </summary>
public sealed class VolumeBatchLoader : IDisposable
{
    readonly VolumeSplit _split;
    readonly VolumeBatchSampler _sampler;
    readonly (int d, int h, int w) _patch;
    readonly bool _augment;
    readonly int _seed;
    readonly CaseCache _cache;
    readonly Prefetcher<VolumeBatch> _prefetcher;

    public VolumeBatchLoader(VolumeSplit split, VolumeBatchSampler sampler, (int d, int h, int w) patch, bool augment, int seed,
        long startBatch = 0, int prefetch = 2, int workers = 1)
    {
        _split = split; _sampler = sampler; _patch = patch; _augment = augment; _seed = seed;
        _cache = new CaseCache(split.NumClasses, split.Reader);
        _prefetcher = new Prefetcher<VolumeBatch>(Make, startBatch, prefetch, workers);
    }

    public double WaitSeconds => _prefetcher.WaitSeconds;

    /// <summary>A case as (D, H, W), read once and its labels checked.</summary>
    public Volume Get(CaseRef c) => _cache.Get(c);

    public VolumeBatch Next() => _prefetcher.Next();

    /// <summary>Builds batch <paramref name="index"/> synchronously.</summary>
    public VolumeBatch Make(long index)
    {
        var (li, ui) = _sampler.Batch(index);
        int n = li.Length + ui.Length, voxels = _patch.d * _patch.h * _patch.w;
        var images = new float[(long)n * voxels];
        var labels = new long[(long)li.Length * voxels];
        var cases = new CaseRef[n];
        for (int k = 0; k < n; k++)
        {
            var c = k < li.Length ? _split.Labeled[li[k]] : _split.Unlabeled[ui[k - li.Length]];
            cases[k] = c;
            var vol = Get(c);
            if (k < li.Length && vol.Label is null) throw new InvalidDataException($"'{c.ImagePath}': labeled case '{c.Name}' has no label");
            var rng = new Random(Seeds.Mix(_seed, index, k));
            var (img, lab) = VolumeAugment.RotFlipCrop(k < li.Length ? vol : new Volume(vol.Name, vol.Depth, vol.Height, vol.Width, vol.Image), _patch, rng, _augment);
            Array.Copy(img, 0, images, (long)k * voxels, voxels);
            if (k < li.Length) for (int p = 0; p < voxels; p++) labels[(long)k * voxels + p] = lab![p];
        }
        return new VolumeBatch { Images = images, Labels = labels, LabeledCount = li.Length, Count = n, Patch = _patch, Cases = cases };
    }

    public void Dispose() => _prefetcher.Dispose();
}
