using SemiSeg.Methods;
using SemiSeg.Models;
using SemiSeg.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

static class Batches
{
    public static Tensor Labels(int n, int size) => randint(0, 4, new long[] { n, size, size }).to_type(ScalarType.Int64);
    public static MethodSettings Params(params (string k, string v)[] kv) => new(kv.ToDictionary(p => p.k, p => p.v));
}
