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
