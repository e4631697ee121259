using System.Runtime.CompilerServices;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Models;

public class ScalarLifetimeTests
{
    /// <summary>Runs <paramref name="body"/> while two threads allocate as the data loader does, so that collections
    /// (and finalizers) run during native calls: TorchSharp's own LeakyReLU fails this way within seconds ("Expected
    /// false to be true" from a freed Scalar).</summary>
    static void UnderGcPressure(Action body)
    {
        using var stop = new CancellationTokenSource();
        var hammers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            long n = 0;
            while (!stop.IsCancellationRequested) { var a = new float[200_000]; n += a.Length; if ((n & 0xFFFFFF) == 0) GC.Collect(0); }
        })).ToArray();
        try { body(); }
        finally { stop.Cancel(); Task.WaitAll(hammers); }
    }

    [Fact]
    public void StableLeakyReLUMatchesTheFunctionalOneAndSurvivesCollections()
    {
        torch.manual_seed(1);
        using var act = new StableLeakyReLU(0.01);
        using var inplace = new StableLeakyReLU(0.01, inplace: true);
        var x = randn(8, 16, 96, 96);
        var expected = nn.functional.leaky_relu(x, 0.01);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        UnderGcPressure(() =>
        {
            for (int i = 0; i < 3000 && clock.Elapsed.TotalSeconds < 10; i++)
            {
                using var scope = NewDisposeScope();
                Assert.True(act.forward(x).allclose(expected));
                Assert.True(inplace.forward(x.clone()).allclose(expected));
            }
        });
    }

    sealed class Sentinel
    {
        readonly StrongBox<bool> _finalized;
        public Sentinel(StrongBox<bool> finalized) => _finalized = finalized;
        ~Sentinel() => _finalized.Value = true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Drop(StrongBox<bool> finalized) => _ = new Sentinel(finalized);

    /// <summary>The mechanism itself: inside a compute loop, an object that a collection finds unreachable in the middle
    /// of an iteration (where a native call may still use it) is finalized at the next safe point, not before.</summary>
    [Fact]
    public void FinalizersRunOnlyAtSafePoints()
    {
        using (FinalizerGuard.Enter())
        {
            FinalizerGuard.SafePoint();
            Assert.True(FinalizerGuard.Active);
            var finalized = new StrongBox<bool>();
            Drop(finalized);
            for (int i = 0; i < 3; i++) { GC.Collect(); Thread.Sleep(50); } // a loader's collection during the "native call"
            Assert.False(finalized.Value, "finalized in the middle of an iteration");
            FinalizerGuard.SafePoint();
            Assert.True(finalized.Value, "not finalized at the safe point");
        }
        Assert.False(FinalizerGuard.Active);
        // outside a loop, finalizers run as usual
        var after = new StrongBox<bool>();
        Drop(after);
        GC.Collect(); GC.WaitForPendingFinalizers();
        Assert.True(after.Value);
    }

    /// <summary>TorchSharp's own temporaries, which we cannot own: the alpha of a + b, the Scalar of x * 0.5, clamp's
    /// bounds, TorchSharp's BatchNorm (num_batches_tracked.add_(1), the crash of issue 15) and its SGD step. Two threads
    /// force collections throughout; every result must equal the one computed before. Without the finalizer gate this
    /// fails within seconds ("Unknown scalar type", "argument alpha must not be a floating point number", or wrong
    /// values).</summary>
    [Fact]
    public void TorchSharpTemporariesSurviveCollectionsInsideAComputeLoop()
    {
        torch.manual_seed(3);
        var x = randn(4, 8, 16, 16); var y = randn(4, 8, 16, 16);
        Tensor Compute()
        {
            var z = x + y;
            for (int k = 0; k < 10; k++) z = (z * 0.5 - y).clamp(-3, 3);
            return z;
        }
        var expected = Compute();
        using var bn = nn.BatchNorm2d(8);
        var w = nn.Parameter(randn(8));
        using var sgd = optim.SGD(new[] { w }, 0.01, momentum: 0.9, weight_decay: 1e-4);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int iterations = 0;
        UnderGcPressure(() =>
        {
            using var gate = FinalizerGuard.Enter();
            for (; iterations < 400 && clock.Elapsed.TotalSeconds < 8; iterations++)
            {
                FinalizerGuard.SafePoint();
                using var scope = NewDisposeScope();
                Assert.True(Compute().eq(expected).all().item<bool>(), $"iteration {iterations}: wrong values");
                bn.train(); bn.forward(x);
                w.grad = ones(8);
                sgd.step();
            }
        });
        Assert.Equal(iterations, bn.num_batches_tracked!.item<long>());
        Assert.True(iterations >= 20, $"only {iterations} iterations ran");
    }
}
