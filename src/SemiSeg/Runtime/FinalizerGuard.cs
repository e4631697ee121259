namespace SemiSeg.Runtime;

/// <summary>
/// Keeps finalizers from freeing native objects while libtorch may still be using them.
/// <para>The cause: TorchSharp 0.107 turns numbers into temporary native Scalars inside its own methods (the alpha of
/// every <c>a + b</c> and <c>sub</c>, BatchNorm's <c>num_batches_tracked.add_(1)</c>, every step of its SGD and Adam,
/// a slope, a clamp bound) and passes only their handles to the native call, so nothing keeps the managed wrapper alive
/// during that call. When another thread allocates (the data loader does all the time) and a collection runs meanwhile,
/// the wrapper is found unreachable and the finalizer thread frees the native Scalar under libtorch, which then reads
/// freed memory: "argument alpha must not be a floating point number" / "Unknown scalar type" crashes in BatchNorm, or,
/// for a float tensor, a silently wrong alpha (dotnet/TorchSharp#1434, #1496). Those temporaries live inside
/// TorchSharp and cannot be owned from here; our own hot paths own theirs (<see cref="Models.StableLeakyReLU"/>,
/// <see cref="Models.StableBatchNorm"/>).</para>
/// <para>The fix: collections still run whenever they like (memory is managed as usual), but the finalizer thread is
/// parked while a compute loop runs and only runs finalizers at safe points, where the calling thread is between native
/// calls. <see cref="SafePoint"/> (each training iteration, each evaluated case) releases the parked finalizer thread,
/// waits until every finalizer queued so far has run, and parks it again behind a gate object; leaving the loop's
/// <see cref="Enter"/> scope releases it for good. A Scalar found unreachable during a native call is therefore freed at the next safe point, after the call
/// returned. Cost: at a safe point after a collection, one more gen-0 collection and the pending finalizers (about a
/// millisecond); at one with no collection since the last, nothing; no reserved memory. Only the thread that calls
/// <see cref="SafePoint"/> is protected: the data loaders make no native calls. SEMISEG_FINALIZER_GATE=0 turns it off.</para>
/// </summary>
public static class FinalizerGuard
{
    static readonly object Sync = new();
    static Gate? _gate;
    static bool _failed;
    static int _depth, _parkedAt;

    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("SEMISEG_FINALIZER_GATE") != "0";

    /// <summary>Whether the finalizer thread is parked now.</summary>
    public static bool Active { get { lock (Sync) return _gate != null; } }

    /// <summary>Opens a compute loop (nested loops, e.g. validation inside training, share the outer one's gate); the
    /// finalizer thread is released when the outermost scope is disposed.</summary>
    public static Scope Enter()
    {
        lock (Sync) _depth++;
        return new Scope();
    }

    public readonly struct Scope : IDisposable
    {
        public void Dispose() { lock (Sync) if (--_depth == 0) Release(); }
    }

    /// <summary>Runs every finalizer queued so far, then parks the finalizer thread until the next safe point. Call
    /// only inside <see cref="Enter"/>'s scope, between native calls, from the thread that makes them.</summary>
    public static void SafePoint()
    {
        if (!Enabled || _failed) return;
        lock (Sync)
        {
            if (_depth == 0) return;
            // objects are queued for finalization only by a collection: none since the gate was parked, nothing to run
            if (_gate != null && GC.CollectionCount(0) == _parkedAt) return;
            Release();
            GC.WaitForPendingFinalizers();
            var gate = new Gate();
            if (!gate.Park()) { _failed = true; gate.Open(); return; } // a finalizer thread that never came: run unguarded
            _gate = gate;
            _parkedAt = GC.CollectionCount(0);
        }
    }

    static void Release()
    {
        _gate?.Open();
        _gate = null;
    }

    /// <summary>An object whose finalizer blocks the (single) finalizer thread until <see cref="Open"/>.</summary>
    sealed class Gate
    {
        readonly ManualResetEventSlim _entered = new(false), _open = new(false);

        /// <summary>Makes a finalizable object that is unreachable at once and collects it, so the finalizer thread
        /// picks it up; waits until it is parked inside (5 s at most).</summary>
        public bool Park()
        {
            Enqueue(_entered, _open);
            for (int i = 0; i < 50 && !_entered.IsSet; i++)
            {
                GC.Collect(0, GCCollectionMode.Forced, blocking: true);
                _entered.Wait(100);
            }
            return _entered.IsSet;
        }

        public void Open() => _open.Set();

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        static void Enqueue(ManualResetEventSlim entered, ManualResetEventSlim open) => _ = new Blocker(entered, open);
    }

    sealed class Blocker
    {
        readonly ManualResetEventSlim _entered, _open;
        public Blocker(ManualResetEventSlim entered, ManualResetEventSlim open) { _entered = entered; _open = open; }
        ~Blocker()
        {
            _entered.Set();
            // bounded, so that code which waits for pending finalizers inside a loop (TorchSharp does after a failed
            // native allocation in rand_like / fftfreq) is delayed, not deadlocked
            _open.Wait(TimeSpan.FromMinutes(5));
        }
    }
}
