using SemiSeg.Models;
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
}
