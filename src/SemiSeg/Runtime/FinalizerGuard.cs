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
/// with a <see cref="Budget"/> allowance, renewing it once half is used. A collection can then only happen at a safe
/// point (or if one iteration alone allocates more than the remaining allowance). Costs one blocking collection per
/// renewal. SEMISEG_GC_GUARD=0 turns it off.
/// </summary>
public static class FinalizerGuard
{
    public const long Budget = 128L << 20;
    static long _regionStart;
    static bool _disabled = Environment.GetEnvironmentVariable("SEMISEG_GC_GUARD") == "0";

    /// <summary>Whether a no-GC region is open now.</summary>
    public static bool Active => GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;

    /// <summary>Renews the no-GC region when it ended or half its allowance is used. Call only from the thread that
    /// makes the native calls, between them.</summary>
    public static void SafePoint()
    {
        if (_disabled) return;
        if (Active && GC.GetTotalAllocatedBytes(false) - _regionStart < Budget / 2) return;
        try
        {
            if (Active) GC.EndNoGCRegion();
            if (GC.TryStartNoGCRegion(Budget)) _regionStart = GC.GetTotalAllocatedBytes(false);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentOutOfRangeException)
        {
            _disabled = true; // a GC configuration without room for the region: run unguarded
        }
    }

    /// <summary>Closes the region (end of a compute loop), so the rest of the program collects normally.</summary>
    public static void End()
    {
        try { if (Active) GC.EndNoGCRegion(); }
        catch (InvalidOperationException) { /* ended by an allocation over the allowance meanwhile */ }
    }
}
