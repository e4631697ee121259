using System.Text;
using System.Text.Json;
using SemiSeg.Models;
using SemiSeg.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Inference;

/// <summary>Metadata stored at the head of every checkpoint.</summary>
public sealed record CheckpointMeta
{
    public int FormatVersion { get; init; } = 1;
    public string Method { get; init; } = "supervised";
    /// <summary>For a 2D checkpoint the UNet; for a 3D one the class count and input channels.</summary>
    public UNetConfig Network { get; init; } = new();
    /// <summary>The 3D network of a volume method's checkpoint; null for 2D.</summary>
    public Net3DConfig? Network3D { get; init; }
    /// <summary>3D checkpoints: the training patch depth (and sliding-window patch with PatchHeight/PatchWidth).</summary>
    public int PatchDepth { get; init; }
    public int PatchHeight { get; init; }
    public int PatchWidth { get; init; }
    public bool LinearImageResize { get; init; }
    /// <summary>When the inference network is a <see cref="SoftmaxEnsemble"/> (C3S3 predicts with both networks):
    /// its members' kinds, from which it is rebuilt; null for a single network.</summary>
    public string[]? Ensemble { get; init; }
    public string[] ClassNames { get; init; } = Array.Empty<string>();
    /// <summary>Iterations completed when this checkpoint was written.</summary>
    public long Iteration { get; init; }
    public double BestMetric { get; init; } = double.NaN;
    public long BestIteration { get; init; }
    public bool HasTrainingState { get; init; }
    /// <summary>Resumable checkpoints: torch's CPU generator state when the checkpoint was written (base64), which a
    /// resume restores; null in weights-only checkpoints and in those written before it was stored (a resume then
    /// reseeds from the seed and the iteration).</summary>
    public string? RandomState { get; init; }
    /// <summary>"sha256": the file ends with "SSSHA256" and the SHA-256 of every byte before it, verified on every
    /// load. Null in checkpoints written before checksums existed; those still load, unverified.</summary>
    public string? Checksum { get; init; }
    public string Created { get; init; } = DateTime.UtcNow.ToString("O");
}

/// <summary>
/// The checkpoint file format, read side: "SEMISEG\n", JSON metadata (<see cref="CheckpointMeta"/>: the network's kind
/// and configuration, patch, classes), the inference network's weights, (for a resumable checkpoint) the method's
/// modules and optimizer state (Training.Checkpoint writes and restores those), then a SHA-256 trailer over all of it
/// (so bit flips and partial copies are found on load). A checkpoint alone rebuilds its network and inferer; a PyTorch
/// state dict under the reference names (<see cref="ForeignCheckpoint"/>) is accepted wherever a checkpoint is read.
/// </summary>
public static class CheckpointFile
{
    internal static readonly byte[] Magic = Encoding.ASCII.GetBytes("SEMISEG\n");

    internal static readonly byte[] TrailerMagic = Encoding.ASCII.GetBytes("SSSHA256");
    const int TrailerLength = 8 + 32;

    /// <summary>Checks the SHA-256 trailer of a checkpoint whose metadata declares one.</summary>
    static void VerifyChecksum(string path, FileStream fs, long payloadStart)
    {
        long payload = fs.Length - TrailerLength;
        if (payload < payloadStart) throw new InvalidDataException($"checkpoint '{path}': truncated (no room for its checksum)");
        var trailer = new byte[TrailerLength];
        fs.Position = payload;
        fs.ReadExactly(trailer);
        if (!trailer.AsSpan(0, 8).SequenceEqual(TrailerMagic))
            throw new InvalidDataException($"checkpoint '{path}': its checksum trailer is missing (truncated or corrupt file)");
        fs.Position = 0;
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var buf = new byte[1 << 20];
        for (long left = payload; left > 0;)
        {
            int n = fs.Read(buf, 0, (int)Math.Min(buf.Length, left));
            if (n == 0) break;
            sha.AppendData(buf, 0, n);
            left -= n;
        }
        if (!sha.GetHashAndReset().AsSpan().SequenceEqual(trailer.AsSpan(8)))
            throw new InvalidDataException($"checkpoint '{path}': checksum mismatch: the file is corrupt (changed bytes or a partial copy)");
    }

    /// <summary>Metadata is read strictly: a field this version does not know means a corrupt or foreign file.</summary>
    static readonly JsonSerializerOptions StrictJson = new(JsonFormat.Options) { UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow };

    /// <summary>What the metadata must satisfy before a network is built from it (sizes that would crash or exhaust
    /// memory natively); null when it does.</summary>
    internal static string? CheckMeta(CheckpointMeta m)
    {
        static bool Patch(int v) => v >= 16 && v % 16 == 0 && v <= 8192;
        var n = m.Network;
        if (m.FormatVersion != 1) return $"format version {m.FormatVersion} is not supported (this version reads 1)";
        if (n is null) return "no network description";
        if (n.NumClasses < 2 || n.NumClasses > 256) return $"{n.NumClasses} classes (expected 2..256)";
        if (n.InChannels < 1 || n.InChannels > 64) return $"{n.InChannels} input channels (expected 1..64)";
        if (m.Network3D is { } n3)
        {
            if (n3.Filters < 1 || n3.Filters > 1024) return $"3D network with {n3.Filters} filters (expected 1..1024)";
            if (!Patch(m.PatchDepth) || !Patch(m.PatchHeight) || !Patch(m.PatchWidth))
                return $"patch {m.PatchDepth}x{m.PatchHeight}x{m.PatchWidth} (each side must be a multiple of 16, 16..8192)";
        }
        else
        {
            if (CheckUNet(n) is string problem) return problem;
            if (!Enum.IsDefined(n.Kind)) return $"2D network kind {(int)n.Kind}";
            if (!Patch(m.PatchHeight) || !Patch(m.PatchWidth)) return $"patch {m.PatchHeight}x{m.PatchWidth} (each side must be a multiple of 16, 16..8192)";
        }
        if (m.Ensemble is { } members)
        {
            bool fits(string k) => SoftmaxEnsemble.IsKnownKind(k) && (k is "net3d" or "resnet34-3d") == (m.Network3D is not null);
            if (members.Length < 2 || members.Length > 8 || members.Any(k => !fits(k)))
                return $"ensemble [{string.Join(",", members)}] (expected 2..8 {(m.Network3D is null ? "2D network names" : "of net3d, resnet34-3d")})";
        }
        if (m.Iteration < 0) return $"iteration {m.Iteration}";
        if (m.Checksum is not (null or "sha256")) return $"checksum kind '{m.Checksum}' (expected sha256)";
        return null;
    }

    /// <summary>UNet widths and dropout rates a network can be built from (a width of 100000 asks libtorch for
    /// hundreds of GB and aborts natively); null when they are fine.</summary>
    public static string? CheckUNet(UNetConfig n)
    {
        if (n.Features is null || n.Features.Length != 5 || n.Features.Any(f => f < 1 || f > 4096)) return $"UNet feature widths [{string.Join(",", n.Features ?? [])}] (expected 5 values in 1..4096)";
        if (n.Dropout is null || n.Dropout.Length != 5 || n.Dropout.Any(p => !(p >= 0 && p <= 1))) return "UNet dropout rates (expected 5 values in [0, 1])";
        return null;
    }

    public static CheckpointMeta ReadMeta(string path, out long networkOffset)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint '{path}' does not exist", path);
        if (ForeignCheckpoint.Recognise(path)) // a PyTorch state dict: its metadata comes from its names and shapes
        {
            networkOffset = 0;
            var (foreign, meta) = ForeignCheckpoint.Load(path, null);
            foreign.Dispose();
            return meta;
        }
        using var fs = File.OpenRead(path);
        using var r = new BinaryReader(fs, Encoding.UTF8);
        var head = r.ReadBytes(Magic.Length);
        if (!head.AsSpan().SequenceEqual(Magic)) throw new InvalidDataException($"checkpoint '{path}': not a SemiSeg checkpoint (bad magic)");
        try
        {
            var meta = JsonSerializer.Deserialize<CheckpointMeta>(r.ReadString(), StrictJson)
                       ?? throw new InvalidDataException("empty metadata");
            networkOffset = fs.Position;
            if (CheckMeta(meta) is string problem) throw new InvalidDataException($"checkpoint '{path}': invalid metadata: {problem}");
            if (meta.Checksum == "sha256") VerifyChecksum(path, fs, networkOffset);
            return meta;
        }
        catch (Exception e) when (e is JsonException or EndOfStreamException)
        {
            throw new InvalidDataException($"checkpoint '{path}': corrupt metadata ({e.Message})", e);
        }
    }

    /// <summary>Rebuilds the inference network from a checkpoint alone (or a PyTorch state dict, see
    /// <see cref="ForeignCheckpoint"/>; <paramref name="inputSize"/> applies to those only).</summary>
    public static (Segmenter2D net, CheckpointMeta meta) LoadNetwork(string path, int[]? inputSize = null)
    {
        var head = ReadMeta(path, out _);
        if (head.Network3D is { } n3)
            throw new InvalidDataException($"checkpoint '{path}' holds a 3D network ({n3.Describe()}); it predicts volumes with a sliding window, not slice by slice");
        if (head.Ensemble is { } members)
            throw new InvalidDataException($"checkpoint '{path}' holds an ensemble ({string.Join(" + ", members)}), not a single 2D network");
        var (net, meta) = LoadAnyNetwork(path, inputSize);
        return ((Segmenter2D)net, meta);
    }

    /// <summary>The inference network a checkpoint's metadata describes, freshly initialised.</summary>
    public static nn.Module<Tensor, Tensor> CreateNetwork(CheckpointMeta meta) =>
        meta.Ensemble is { } members ? SoftmaxEnsemble.Create(members, meta.Network, meta.Network3D)
        : meta.Network3D is { } n3 ? n3.Create(meta.Network.InChannels, meta.Network.NumClasses) : Segmenter2D.Create(meta.Network);

    /// <summary>Rebuilds the inference network, 2D or 3D, single or an ensemble, from a checkpoint alone (or a PyTorch
    /// state dict, see <see cref="ForeignCheckpoint"/>; <paramref name="inputSize"/> applies to those only).</summary>
    public static (nn.Module<Tensor, Tensor> net, CheckpointMeta meta) LoadAnyNetwork(string path, int[]? inputSize = null)
    {
        if (ForeignCheckpoint.Recognise(path)) return ForeignCheckpoint.Load(path, inputSize);
        var meta = ReadMeta(path, out long off);
        var net = CreateNetwork(meta);
        try
        {
            using var fs = File.OpenRead(path);
            fs.Position = off;
            using var r = new BinaryReader(fs);
            net.load(r);
        }
        catch (Exception e) when (e is not InvalidDataException)
        {
            net.Dispose();
            throw new InvalidDataException($"checkpoint '{path}': network weights cannot be read ({e.Message})", e);
        }
        try { NumericGuard.EnsureFiniteCheckpoint(net, path); }
        catch { net.Dispose(); throw; }
        return (net, meta);
    }

    /// <summary>The checkpoint's network with the inference it was trained for: slice-wise at the training patch for a
    /// 2D network, sliding window over the training patch (strides <paramref name="stride"/>, default half the patch)
    /// for a 3D one (a PyTorch state dict's input size is <paramref name="inputSize"/>, see <see cref="ForeignCheckpoint"/>);
    /// a checkpoint holding an ensemble (<see cref="CheckpointMeta.Ensemble"/>) predicts with all its members' averaged
    /// softmax either way. The inferer owns the network.</summary>
    public static (IInferer inferer, CheckpointMeta meta) LoadInferer(string path, (int d, int h, int w)? stride = null, bool largestComponent = false, int[]? inputSize = null,
        TorchSharp.torch.Device? device = null)
    {
        // read on the host whatever device wrote it (the file is device-free), then moved to the inference device
        var (net, meta) = LoadAnyNetwork(path, inputSize);
        if (device is not null) Runtime.ComputeDevice.Place(new[] { (nn.Module)net }, device);
        IInferer inferer = meta.Network3D is null
            ? new SliceWiseInferer(net, meta.Network.NumClasses, meta.PatchHeight, meta.PatchWidth, meta.LinearImageResize, largestComponent, ownsNetwork: true)
            : new SlidingWindowInferer(net, meta.Network.NumClasses, (meta.PatchDepth, meta.PatchHeight, meta.PatchWidth), stride, largestComponent, ownsNetwork: true);
        return (inferer, meta);
    }
}
