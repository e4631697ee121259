using System.Collections.Concurrent;
using System.Diagnostics;
using SemiSeg.Runtime;

namespace SemiSeg.Data;

/// <summary>One training batch as plain arrays: images (B, 1, H, W) labeled first; labels (B_l, H, W).</summary>
public sealed class Batch
{
    public required float[] Images { get; init; }
    public required long[] Labels { get; init; }
    public required int LabeledCount { get; init; }
    public required int Count { get; init; }
    public required int Height { get; init; }
    public required int Width { get; init; }
    public required SliceRef[] Items { get; init; }
}

/// <summary>
/// Loads and augments batches on background threads, <see cref="Prefetch"/> batches ahead, in a fixed order, each
/// item with its own seeded random generator (seed, batch, slot): results do not depend on thread timing.
/// <see cref="WaitSeconds"/> accumulates the time the trainer spent waiting for data.
/// </summary>
public sealed class BatchLoader : IDisposable
{
    readonly IReadOnlyList<SliceRef> _labeled, _unlabeled;
    readonly IBatchSampler _sampler;
    readonly SliceAugmenter _aug;
    readonly CaseCache _cache;
    readonly int _seed;
    readonly Prefetcher<Batch> _prefetcher;

    public BatchLoader(IReadOnlyList<SliceRef> labeled, IReadOnlyList<SliceRef> unlabeled, IBatchSampler sampler,
        SliceAugmenter aug, CaseCache cache, int seed, long startBatch = 0, int prefetch = 4, int workers = 2)
    {
        _labeled = labeled; _unlabeled = unlabeled; _sampler = sampler; _aug = aug; _cache = cache; _seed = seed;
        Prefetch = Math.Max(1, prefetch);
        _prefetcher = new Prefetcher<Batch>(Make, startBatch, Prefetch, workers);
    }

    public int Prefetch { get; }
    public double WaitSeconds => _prefetcher.WaitSeconds;

    public Batch Next() => _prefetcher.Next();

    /// <summary>Builds batch <paramref name="index"/> synchronously (also used by tests).</summary>
    public Batch Make(long index)
    {
        var (li, ui) = _sampler.Batch(index);
        int n = li.Length + ui.Length, H = _aug.Height, W = _aug.Width, hw = H * W;
        var images = new float[n * hw];
        var labels = new long[li.Length * hw];
        var items = new SliceRef[n];
        for (int k = 0; k < n; k++)
        {
            var s = k < li.Length ? _labeled[li[k]] : _unlabeled[ui[k - li.Length]];
            items[k] = s;
            var vol = _cache.Get(s.Case);
            var img = vol.SliceImage(s.Z);
            var lab = k < li.Length ? vol.SliceLabel(s.Z) : null;
            if (k < li.Length && lab == null) throw new InvalidDataException($"'{s.Case.ImagePath}': labeled case has no label");
            var rng = new Random(Seeds.Mix(_seed, index, k));
            var (ai, al) = _aug.Apply(img, lab, vol.Height, vol.Width, rng);
            Array.Copy(ai, 0, images, k * hw, hw);
            if (al != null) for (int p = 0; p < hw; p++) labels[k * hw + p] = al[p];
        }
        return new Batch { Images = images, Labels = labels, LabeledCount = li.Length, Count = n, Height = H, Width = W, Items = items };
    }

    public void Dispose() => _prefetcher.Dispose();
}
