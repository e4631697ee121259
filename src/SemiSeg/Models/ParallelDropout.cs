using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

/// <summary>
/// Element-wise dropout (the UNet encoder's nn.Dropout) with its mask drawn in parallel. libtorch 2.10's CPU
/// bernoulli_ runs a serial kernel on one mt19937 stream: about 0.3 s for the first encoder level of a 256x256 batch
/// of 24 (25 M elements) while the other cores wait, some 73 M draws per Mean-Teacher iteration. Here the mask is
/// written straight into the tensor's memory by counter-based SplitMix64 streams, one per chunk, on as many threads as
/// torch uses; the per-call seed is drawn from torch's generator, so torch.manual_seed still makes runs repeatable.
/// Same semantics as torch's dropout: in training, y = x·m with m ∈ {0, 1/(1−p)} i.i.d., keep probability 1−p (to 2⁻³²);
/// the identity in evaluation. The mask follows the input's memory layout (channels_last stays channels_last).
/// </summary>
public sealed class ParallelDropout : Module<Tensor, Tensor>
{
    readonly double _p;

    public ParallelDropout(double p) : base(nameof(ParallelDropout))
    {
        if (p < 0 || p > 1) throw new ArgumentOutOfRangeException(nameof(p), $"dropout probability {p} is outside [0, 1]");
        _p = p;
    }

    public double P => _p;

    public override Tensor forward(Tensor x)
    {
        if (!training || _p == 0) return x.alias();
        if (_p == 1) return x.mul(0);
        using var mask = DropoutMask.Like(x, _p);
        return x.mul(mask);
    }
}

/// <summary>Dropout masks filled in parallel directly in a tensor's storage.</summary>
public static class DropoutMask
{
    [DllImport("LibTorchSharp")]
    static extern IntPtr THSTensor_data(IntPtr handle);

    const int Chunk = 1 << 16;

    /// <summary>A float mask shaped and laid out like <paramref name="x"/>: 1/(1−p) with probability 1−p, else 0.</summary>
    public static Tensor Like(Tensor x, double p)
    {
        if (x.dtype != ScalarType.Float32 || x.device_type != DeviceType.CPU)
        {
            // other types and devices: libtorch's own kernel
            using var noise = empty_like(x).bernoulli_(1 - p);
            return noise.div_(1 - p);
        }
        var mask = empty_like(x);
        if (!mask.is_contiguous() && !MemoryLayout.IsChannelsLast(mask))
        {
            mask.Dispose();
            mask = empty(x.shape, dtype: x.dtype, device: x.device);
        }
        ulong seed;
        // the seed is a host draw from torch's CPU generator (the mask is written on the host)
        using (var s = randint(0, int.MaxValue, new long[] { 2 }, dtype: ScalarType.Int64, device: CPU))
        {
            var v = s.data<long>();
            seed = ((ulong)v[0] << 31) ^ (ulong)v[1];
        }
        Fill(THSTensor_data(mask.Handle), mask.numel(), p, seed, torch.get_num_threads());
        return mask;
    }

    /// <summary>Writes <paramref name="count"/> mask values at <paramref name="data"/>; chunk c uses the SplitMix64
    /// stream seeded with seed + c·golden, so the result does not depend on the number of threads.</summary>
    public static unsafe void Fill(IntPtr data, long count, double p, ulong seed, int threads)
    {
        uint threshold = (uint)Math.Min(uint.MaxValue, Math.Round((1 - p) * 4294967296.0));
        bool keepAll = (1 - p) * 4294967296.0 >= 4294967295.5;
        float scale = (float)(1.0 / (1 - p));
        long chunks = (count + Chunk - 1) / Chunk;
        float* basePtr = (float*)data;
        Parallel.For(0L, chunks, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, c =>
        {
            // a hashed start per chunk (a plain seed + c·golden would make chunk c's stream chunk 0's shifted by c)
            ulong state = Mix(seed ^ ((ulong)c * 0xD1B54A32D192ED03UL));
            long start = c * Chunk, end = Math.Min(count, start + Chunk);
            float* ptr = basePtr;
            long i = start;
            for (; i + 1 < end; i += 2)
            {
                ulong r = Next(ref state);
                ptr[i] = keepAll || (uint)r < threshold ? scale : 0f;
                ptr[i + 1] = keepAll || (uint)(r >> 32) < threshold ? scale : 0f;
            }
            if (i < end) ptr[i] = keepAll || (uint)Next(ref state) < threshold ? scale : 0f;
        });
    }

    static ulong Next(ref ulong state) => Mix(state += 0x9E3779B97F4A7C15UL);

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
