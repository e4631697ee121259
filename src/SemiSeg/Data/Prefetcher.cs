using System.Collections.Concurrent;
using System.Diagnostics;
using SemiSeg.Runtime;

namespace SemiSeg.Data;

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
