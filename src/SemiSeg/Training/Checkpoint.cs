using System.Text;
using System.Text.Json;
using SemiSeg.Data;
using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Training;

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
    /// <summary>"sha256": the file ends with "SSSHA256" and the SHA-256 of every byte before it, verified on every
    /// load. Null in checkpoints written before checksums existed; those still load, unverified.</summary>
    public string? Checksum { get; init; }
    public string Created { get; init; } = DateTime.UtcNow.ToString("O");
}

/// <summary>
/// Checkpoint file: "SEMISEG\n", JSON metadata, the inference network's weights, then (for a resumable checkpoint)
/// every stateful module of the method and the optimizer state, then a SHA-256 trailer over all of it (so bit flips
/// and partial copies are found on load). Always written to a temporary file and renamed.
/// </summary>
public static class Checkpoint
{
    static readonly byte[] Magic = Encoding.ASCII.GetBytes("SEMISEG\n");

    public static void Save(string path, CheckpointMeta meta, ITrainableMethod method, TorchSharp.Modules.OptimizerHelper? optimizer)
    {
        meta = meta with { HasTrainingState = optimizer != null, Ensemble = (method.InferenceModule as SoftmaxEnsemble)?.Kinds };
        foreach (var m in optimizer != null ? method.StatefulModules : new[] { method.InferenceModule }) NumericGuard.EnsureFiniteWeights(m, path);
        AtomicFile.Write(path, s =>
        {
            using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
            w.Write(Magic);
            w.Write(JsonSerializer.Serialize(meta with { Checksum = "sha256" }, TrainOptions.Json));
            SaveModule(w, method.InferenceModule);
            if (optimizer != null)
            {
                foreach (var m in method.StatefulModules) SaveModule(w, m);
                MakeOptimizerStateContiguous(optimizer);
                optimizer.save_state_dict(w);
            }
            w.Flush();
            s.Position = 0;
            var hash = System.Security.Cryptography.SHA256.HashData(s);
            s.Write(TrailerMagic);
            s.Write(hash);
        });
    }

    static readonly byte[] TrailerMagic = Encoding.ASCII.GetBytes("SSSHA256");
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

    /// <summary>TorchSharp (de)serialises raw bytes, which needs contiguous tensors; channels_last weights are made
    /// contiguous for the transfer and given their layout back afterwards (the file is layout-free).</summary>
    static void SaveModule(BinaryWriter w, nn.Module m) => WithContiguousTensors(m, () => m.save(w));

    static void LoadModule(BinaryReader r, nn.Module m) => WithContiguousTensors(m, () => m.load(r));

    static void WithContiguousTensors(nn.Module m, Action action)
    {
        var changed = new List<Tensor>();
        using (no_grad())
            foreach (var p in m.parameters().Cast<Tensor>().Concat(m.buffers()))
                if (!p.is_contiguous()) { using var c = p.contiguous(); p.set_(c); changed.Add(p); }
        try { action(); }
        finally
        {
            using (no_grad())
                foreach (var p in changed) using (var cl = MemoryLayout.ToChannelsLast(p)) p.set_(cl);
        }
    }

    /// <summary>Optimizer state tensors (SGD momentum, Adam-family moments) are created like the channels_last
    /// parameters; make them contiguous so they serialise (they are updated in place, so this happens once). The
    /// state classes differ per optimizer, so their tensor fields are found by reflection.</summary>
    static void MakeOptimizerStateContiguous(TorchSharp.Modules.OptimizerHelper optimizer)
    {
        foreach (var st in optimizer.state_dict().State)
        {
            if (st is null) continue;
            foreach (var f in st.GetType().GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
                if (f.FieldType == typeof(Tensor) && f.GetValue(st) is Tensor t && !t.IsInvalid && !t.is_contiguous())
                {
                    f.SetValue(st, t.contiguous());
                    t.Dispose();
                }
        }
    }

    /// <summary>Metadata is read strictly: a field this version does not know means a corrupt or foreign file.</summary>
    static readonly JsonSerializerOptions StrictJson = new(TrainOptions.Json) { UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow };

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
            if (!Patch(m.PatchHeight) || !Patch(m.PatchWidth)) return $"patch {m.PatchHeight}x{m.PatchWidth} (each side must be a multiple of 16, 16..8192)";
        }
        if (m.Ensemble is { } members && (members.Length < 2 || members.Length > 8 || members.Any(k => !SoftmaxEnsemble.KnownKinds.Contains(k))))
            return $"ensemble [{string.Join(",", members)}] (expected 2..8 of {string.Join(", ", SoftmaxEnsemble.KnownKinds)})";
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

    /// <summary>Rebuilds the inference network from a checkpoint alone.</summary>
    public static (UNet2D net, CheckpointMeta meta) LoadNetwork(string path)
    {
        var head = ReadMeta(path, out _);
        if (head.Network3D is { } n3)
            throw new InvalidDataException($"checkpoint '{path}' holds a 3D network ({n3.Describe()}); it predicts volumes with a sliding window, not slice by slice");
        if (head.Ensemble is { } members)
            throw new InvalidDataException($"checkpoint '{path}' holds an ensemble ({string.Join(" + ", members)}), not a single 2D UNet");
        var (net, meta) = LoadAnyNetwork(path);
        return ((UNet2D)net, meta);
    }

    /// <summary>The inference network a checkpoint's metadata describes, freshly initialised.</summary>
    public static nn.Module<Tensor, Tensor> CreateNetwork(CheckpointMeta meta) =>
        meta.Ensemble is { } members ? SoftmaxEnsemble.Create(members, meta.Network, meta.Network3D)
        : meta.Network3D is { } n3 ? n3.Create(meta.Network.InChannels, meta.Network.NumClasses) : new UNet2D(meta.Network);

    /// <summary>Rebuilds the inference network, 2D or 3D, from a checkpoint alone.</summary>
    public static (nn.Module<Tensor, Tensor> net, CheckpointMeta meta) LoadAnyNetwork(string path)
    {
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

    /// <summary>Restores a method's modules and the optimizer from a resumable checkpoint.</summary>
    public static CheckpointMeta Restore(string path, ITrainableMethod method, TorchSharp.Modules.OptimizerHelper optimizer, string? expectedMethod = null)
    {
        var meta = ReadMeta(path, out long off);
        if (!meta.HasTrainingState) throw new InvalidDataException($"checkpoint '{path}' holds weights only; it cannot resume training");
        if (expectedMethod != null && meta.Method != expectedMethod)
            throw new InvalidDataException($"checkpoint '{path}' was trained with method '{meta.Method}'; it cannot resume as '{expectedMethod}' (resume with --method {meta.Method})");
        try
        {
            using var fs = File.OpenRead(path);
            fs.Position = off;
            using var r = new BinaryReader(fs);
            using (var scratch = CreateNetwork(meta)) scratch.load(r); // skip the inference copy
            foreach (var m in method.StatefulModules) LoadModule(r, m);
            MakeOptimizerStateContiguous(optimizer); // Adam-family moments exist (channels_last) before the first step
            optimizer.load_state_dict(r);
        }
        catch (Exception e) when (e is not InvalidDataException)
        {
            throw new InvalidDataException($"checkpoint '{path}': training state cannot be restored ({e.Message})", e);
        }
        return meta;
    }
}
