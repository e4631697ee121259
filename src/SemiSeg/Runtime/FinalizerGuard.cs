using System.Runtime;

namespace SemiSeg.Runtime;

/// <summary>
/// Keeps garbage collections, and so finalizers, out of the middle of native libtorch calls.
/// TorchSharp 0.107 turns numbers into temporary native Scalars in many of its own methods (the alpha of every
/// <c>a + b</c>, a slope, a clamp bound) and nothing keeps the managed wrapper alive during the native call: when
/// another thread (the data loader) allocates and a collection runs meanwhile, the wrapper's finalizer frees the Scalar
/// under libtorch, which then fails with "Expected false to be true ... toFloat" (dotnet/TorchSharp#1434, #1496). Our
/// own hot paths own their Scalars (<see cref="Models.StableLeakyReLU"/>), but TorchSharp's internals cannot be
/// changed from here. So the compute loops run inside a no-GC region: <see cref="SafePoint"/>, called where the main
/// thread is between native calls (each training iteration, each evaluated case), collects there and opens a region
/// with an allowance sized to the loop's own allocation rate. A collection can then only happen at a safe
/// point (or if one iteration allocates more than twice the most seen so far). Costs one blocking collection per
/// renewal and a few iterations' worth of managed garbage, and more resident memory than that (see <see cref="Enabled"/>).
/// </summary>
public static class FinalizerGuard
{
    const long MinBudget = 16L << 20, MaxBudget = 1L << 30;
    static long _regionStart, _budget, _lastPoint, _maxStep;
    static bool _failed;

    /// <summary>Off by default (SEMISEG_GC_GUARD=1 turns it on): measured at 96x96 batch 8 with the ACDC loader over
    /// 450-950 iterations, the regions raised resident memory by 0.4-0.7 GiB and kept it creeping up (no guard: flat at
    /// ~1.05 GiB from iteration 300 on), while the crash it prevents is rare and a run resumes from last.ckpt.</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("SEMISEG_GC_GUARD") == "1";

    /// <summary>Whether a no-GC region is open now.</summary>
    public static bool Active => GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;

    /// <summary>Renews the no-GC region when it ended or fewer than two of the largest recent steps (the bytes
    /// allocated between consecutive safe points, a maximum that decays 2% per step) are left; the allowance is four such steps plus 16 MiB, so the
    /// garbage a region holds stays a few iterations' worth. Call only from the thread that makes the native calls,
    /// between them.</summary>
    public static void SafePoint()
    {
        if (!Enabled || _failed) return;
        long now = GC.GetTotalAllocatedBytes(false);
        if (_lastPoint > 0) _maxStep = Math.Max(now - _lastPoint, (long)(_maxStep * 0.98)); // a slowly forgetting maximum
        _lastPoint = now;
        if (Active && _budget - (now - _regionStart) > 2 * _maxStep + (4L << 20)) return;
        try
        {
            if (Active) GC.EndNoGCRegion();
            long budget = Math.Clamp(4 * _maxStep + MinBudget, MinBudget, MaxBudget);
            if (GC.TryStartNoGCRegion(budget)) { _budget = budget; _regionStart = _lastPoint = GC.GetTotalAllocatedBytes(false); }
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentOutOfRangeException)
        {
            _failed = true; // a GC configuration without room for the region: run unguarded
        }
    }

    /// <summary>Closes the region (end of a compute loop), so the rest of the program collects normally.</summary>
    public static void End()
    {
        try { if (Active) GC.EndNoGCRegion(); }
        catch (InvalidOperationException) { /* ended by an allocation over the allowance meanwhile */ }
    }
}
