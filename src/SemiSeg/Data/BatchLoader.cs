using System.Collections.Concurrent;
using System.Diagnostics;
using SemiSeg.Runtime;

namespace SemiSeg.Data;

/// <summary>
/// An endless chain of seeded permutations of 0..n−1 (one per epoch, seeded by (seed, stream, epoch)): position p of
/// the chain is element p mod n of permutation p div n. A pure function of the position, so samplers built on it
/// resume exactly.
/// </summary>
public sealed class PermutationChain
{
    readonly int _n, _seed, _stream;
    readonly ConcurrentDictionary<long, int[]> _epochs = new();

    public PermutationChain(int n, int seed, int stream) { _n = n; _seed = seed; _stream = stream; }

    /// <summary>The permutation of epoch <paramref name="epoch"/>.</summary>
    public int[] Epoch(long epoch) => _epochs.GetOrAdd(epoch, e =>
    {
        var p = Enumerable.Range(0, _n).ToArray();
        new Random(Seeds.Mix(_seed, _stream, e)).Shuffle(p);
        if (_epochs.Count > 64) _epochs.Clear();
        return p;
    });

    public int At(long position) => Epoch(position / _n)[(int)(position % _n)];
}

/// <summary>Which items make batch b: indices into the loader's labeled list, then into its unlabeled list. A pure
/// function of b, so an interrupted run resumes on exactly the batches it would have seen.</summary>
public interface IBatchSampler
{
    (int[] labeled, int[] unlabeled) Batch(long b);
}

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

/// <summary>Thread-safe lazy cache of decoded cases, so each file is read once per run.</summary>
public sealed class CaseCache
{
    readonly ConcurrentDictionary<string, Lazy<Volume>> _cache = new();
    readonly int _numClasses;
    readonly Func<CaseRef, Volume> _read;

    /// <param name="read">How a case is read as (D, H, W); default <see cref="VolumeIO.Read"/>.</param>
    public CaseCache(int numClasses, Func<CaseRef, Volume>? read = null)
    {
        _numClasses = numClasses;
        _read = read ?? (c => VolumeIO.Read(c));
    }

    public Volume Get(CaseRef c) => _cache.GetOrAdd(c.Name + "|" + c.ImagePath + "|" + (c.LabelPath ?? ""), _ => new Lazy<Volume>(() =>
    {
        var v = _read(c);
        v.ValidateLabel(_numClasses, c.LabelPath ?? c.ImagePath);
        return v;
    })).Value;
}

/// <summary>
/// Builds items 0, 1, 2, ... (from a start index) on background threads, a fixed number ahead and at most
/// <c>workers</c> at a time, and hands them out in order; <see cref="WaitSeconds"/> accumulates the time the consumer
/// waited. The 2D and 3D batch loaders both run on it.
/// </summary>
public sealed class Prefetcher<T> : IDisposable
{
    readonly Func<long, T> _make;
    readonly Queue<Task<T>> _inflight = new();
    readonly SemaphoreSlim _workers;
    long _next;

    public Prefetcher(Func<long, T> make, long start, int prefetch, int workers)
    {
        _make = make; _next = start;
        _workers = new SemaphoreSlim(Math.Max(1, workers));
        for (int i = 0; i < Math.Max(1, prefetch); i++) Enqueue();
    }

    public double WaitSeconds { get; private set; }

    void Enqueue()
    {
        long idx = _next++;
        _inflight.Enqueue(Task.Run(async () =>
        {
            await _workers.WaitAsync().ConfigureAwait(false);
            try { return _make(idx); } finally { _workers.Release(); }
        }));
    }

    public T Next()
    {
        var sw = Stopwatch.StartNew();
        var item = _inflight.Dequeue().GetAwaiter().GetResult();
        WaitSeconds += sw.Elapsed.TotalSeconds;
        Enqueue();
        return item;
    }

    public void Dispose()
    {
        foreach (var t in _inflight) { try { t.Wait(); } catch { /* errors already surfaced or irrelevant at shutdown */ } }
        _inflight.Clear();
        _workers.Dispose();
    }
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
