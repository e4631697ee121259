using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Models;

/// <summary><see cref="ClassIndex.Of"/> is libtorch's argmax, index for index: first maximum on ties, first NaN
/// where there is one, in NCHW and channels_last, over dimension 1 of a map and dimension 0 of a probability volume.</summary>
public class ClassIndexTests
{
    [Fact]
    public void GivesArgmaxsIndicesOnTiesAndNaN()
    {
        var g = new Generator(7);
        // scores on a coarse grid so that ties are common: 5 values over 4 classes
        var scores = randint(0, 5, new long[] { 3, 4, 9, 11 }, generator: g).to_type(ScalarType.Float32);
        scores[0, 2, 3, 4] = tensor(float.NaN); scores[1, 1, 0, 0] = tensor(float.NaN); scores[1, 3, 0, 0] = tensor(float.NaN);
        scores[2, 0, 5, 5] = tensor(float.PositiveInfinity); scores[2, 1, 5, 5] = tensor(float.PositiveInfinity);
        var ties = scores.max(1).values.unsqueeze(1).eq(scores).sum(1).gt(1).sum().item<long>();
        Assert.True(ties > 50, $"only {ties} tied pixels");
        foreach (var x in new[] { scores, MemoryLayout.ToChannelsLast(scores) })
        {
            Assert.Equal(x.argmax(1).data<long>().ToArray(), ClassIndex.Of(x).data<long>().ToArray());
            Assert.Equal(x.argmax(0).data<long>().ToArray(), ClassIndex.Of(x, 0).data<long>().ToArray());
        }
        Assert.Equal(2, ClassIndex.Of(scores)[0, 3, 4].item<long>());   // the NaN
        Assert.Equal(1, ClassIndex.Of(scores)[1, 0, 0].item<long>());   // the first NaN
        Assert.Equal(0, ClassIndex.Of(scores)[2, 5, 5].item<long>());   // the first +inf
        Assert.Equal(ScalarType.Int64, ClassIndex.Of(scores).dtype);
    }
}
