using System.Runtime.Intrinsics;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SemiSeg.Models;

/// <summary>
/// Element-wise dropout (the UNet encoder's nn.Dropout) with its mask drawn in parallel. libtorch 2.10's CPU
/// bernoulli_ runs a serial kernel on one mt19937 stream: about 0.3 s for the first encoder level of a 256x256 batch
/// of 24 (25 M elements) while the other cores wait, some 73 M draws per Mean-Teacher iteration. Here the mask is
/// written straight into the tensor's memory by counter-based SplitMix64 streams, one per chunk, eight or four draws
/// at once in AVX-512 or AVX2 registers (about 20x the scalar loop on one core: 0.07 ms for the 1.2 M elements of
/// the first level at 96x96 batch 8), and large masks on as many threads as torch uses; the per-call seed is drawn
/// from torch's generator, so torch.manual_seed still makes runs repeatable.
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
        Fill(TensorMemory.Address(mask), mask.numel(), p, seed, torch.get_num_threads());
        return mask;
    }

    /// <summary>Writes <paramref name="count"/> mask values at <paramref name="data"/>; chunk c has its own SplitMix64
    /// stream, started from a hash of the seed and c, so the result does not depend on the number of threads.
    /// <paramref name="vectorBits"/> caps the vector width (512, 256, or 0 for the scalar loop alone); every width
    /// writes the same mask (tested). Chunks run in parallel from 64 chunks on (below that the vectorised fill is
    /// faster than waking a pool thread beside libtorch's spinning OpenMP workers).</summary>
    public static unsafe void Fill(IntPtr data, long count, double p, ulong seed, int threads, int vectorBits = 512)
    {
        uint threshold = (uint)Math.Min(uint.MaxValue, Math.Round((1 - p) * 4294967296.0));
        bool keepAll = (1 - p) * 4294967296.0 >= 4294967295.5;
        float scale = (float)(1.0 / (1 - p));
        long chunks = (count + Chunk - 1) / Chunk;
        float* basePtr = (float*)data;
        void One(long c)
        {
            // a hashed start per chunk (a plain seed + c·golden would make chunk c's stream chunk 0's shifted by c)
            long start = c * Chunk, end = Math.Min(count, start + Chunk);
            FillChunk(basePtr + start, (int)(end - start), SplitMix64.Mix(seed ^ ((ulong)c * 0xD1B54A32D192ED03UL)), threshold, keepAll, scale, vectorBits);
        }
        if (threads <= 1 || chunks < ParallelChunks) for (long c = 0; c < chunks; c++) One(c);
        else Parallel.For(0L, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, One);
    }

    /// <summary>The chunk count (4 M elements) from which <see cref="Fill"/> spreads chunks over threads.</summary>
    const long ParallelChunks = 64;

    /// <summary>One chunk: element e is half (e mod 2) of draw e/2 of the stream, Mix(state + (e/2 + 1)·golden), its
    /// low 32 bits for even e and its high 32 bits for odd e; kept when that half is below the threshold. A vector
    /// of ulong draws read as uints is exactly that order, so the vector loops (8 or 4 draws at once) and the scalar
    /// tail write the same mask as the scalar loop alone (tested).</summary>
    static unsafe void FillChunk(float* ptr, int n, ulong state, uint threshold, bool keepAll, float scale, int vectorBits)
    {
        if (keepAll) { new Span<float>(ptr, n).Fill(scale); return; }
        int e = 0;
        if (vectorBits >= 512 && Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(state) + Vector512.Create(1UL, 2, 3, 4, 5, 6, 7, 8) * Vector512.Create(SplitMix64.Golden);
            var step = Vector512.Create(unchecked(8 * SplitMix64.Golden));
            var thr = Vector512.Create(threshold); var sc = Vector512.Create(scale);
            for (; e + 16 <= n; e += 16, s += step)
                Vector512.ConditionalSelect(Vector512.LessThan(Mix(s).AsUInt32(), thr).AsSingle(), sc, Vector512<float>.Zero).Store(ptr + e);
        }
        else if (vectorBits >= 256 && Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(state) + Vector256.Create(1UL, 2, 3, 4) * Vector256.Create(SplitMix64.Golden);
            var step = Vector256.Create(unchecked(4 * SplitMix64.Golden));
            var thr = Vector256.Create(threshold); var sc = Vector256.Create(scale);
            for (; e + 8 <= n; e += 8, s += step)
                Vector256.ConditionalSelect(Vector256.LessThan(Mix(s).AsUInt32(), thr).AsSingle(), sc, Vector256<float>.Zero).Store(ptr + e);
        }
        state += (ulong)(e / 2) * SplitMix64.Golden;
        for (; e + 1 < n; e += 2)
        {
            ulong r = SplitMix64.Next(ref state);
            ptr[e] = (uint)r < threshold ? scale : 0f;
            ptr[e + 1] = (uint)(r >> 32) < threshold ? scale : 0f;
        }
        if (e < n) ptr[e] = (uint)SplitMix64.Next(ref state) < threshold ? scale : 0f;
    }

    static Vector512<ulong> Mix(Vector512<ulong> z)
    {
        z = (z ^ Vector512.ShiftRightLogical(z, 30)) * Vector512.Create(SplitMix64.M1);
        z = (z ^ Vector512.ShiftRightLogical(z, 27)) * Vector512.Create(SplitMix64.M2);
        return z ^ Vector512.ShiftRightLogical(z, 31);
    }

    static Vector256<ulong> Mix(Vector256<ulong> z)
    {
        z = (z ^ Vector256.ShiftRightLogical(z, 30)) * Vector256.Create(SplitMix64.M1);
        z = (z ^ Vector256.ShiftRightLogical(z, 27)) * Vector256.Create(SplitMix64.M2);
        return z ^ Vector256.ShiftRightLogical(z, 31);
    }

}
