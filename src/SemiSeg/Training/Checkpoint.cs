using System.Text;
using System.Text.Json;
using SemiSeg.Data;
using SemiSeg.Inference;
using SemiSeg.Runtime;
using SemiSeg.Methods;
using SemiSeg.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Training;

/// <summary>
/// Writes checkpoints (format: <see cref="CheckpointFile"/>, which also reads them back as networks): the inference
/// network's weights, then for a resumable checkpoint every stateful module of the method and the optimizer state;
/// always to a temporary file that is renamed. Restores a method and its optimizer to resume.
/// </summary>
public static class Checkpoint
{
    public static void Save(string path, CheckpointMeta meta, ITrainableMethod method, TorchSharp.Modules.OptimizerHelper? optimizer)
    {
        meta = meta with
        {
            HasTrainingState = optimizer != null, Ensemble = (method.InferenceModule as SoftmaxEnsemble)?.Kinds,
            RandomState = optimizer != null ? TorchRuntime.RandomState() : null,
        };
        foreach (var m in optimizer != null ? method.StatefulModules : new[] { method.InferenceModule }) NumericGuard.EnsureFiniteWeights(m, path);
        AtomicFile.Write(path, s =>
        {
            using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
            w.Write(CheckpointFile.Magic);
            w.Write(JsonSerializer.Serialize(meta with { Checksum = "sha256" }, JsonFormat.Options));
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
            s.Write(CheckpointFile.TrailerMagic);
            s.Write(hash);
        });
    }

    /// <summary>TorchSharp (de)serialises raw bytes, which needs contiguous tensors; channels_last weights are made
    /// contiguous for the transfer and given their layout back afterwards (the file is layout-free).</summary>
    static void SaveModule(BinaryWriter w, nn.Module m) => WithContiguousTensors(m, () => m.save(w));

    static void LoadModule(BinaryReader r, nn.Module m) =>
        WithContiguousTensors(m, () => { if (ComputeDevice.Of(m).type == DeviceType.CPU) m.load(r); else LoadInPlace(r, m); });

    /// <summary>
    /// TorchSharp's Module.load on a module off the CPU moves it to the CPU and back, which re-creates every parameter:
    /// the optimizer would keep the old ones and frozen (EMA) weights would require gradients again. This reads the same
    /// format (entry count, then name and tensor per state entry) into the existing tensors: each is read on the host
    /// and copied into place on its device (TorchSharp's Tensor.Load).
    /// </summary>
    public static void LoadInPlace(BinaryReader r, nn.Module m)
    {
        var sd = m.state_dict();
        long entries = r.Read7BitEncodedInt64(); // TorchSharp's Encode: the same 7-bit varint
        if (entries != sd.Count) throw new ArgumentException($"Mismatched state_dict sizes: expected {sd.Count}, but found {entries} entries.");
        for (long i = 0; i < entries; i++)
        {
            var key = r.ReadString();
            if (!sd.TryGetValue(key, out var t)) throw new ArgumentException($"Mismatched module state names: the target module has no parameter or buffer named '{key}'");
            t.Load(r);
        }
    }

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

    /// <summary>Optimizer state tensors (momentum buffers, moments, step counts) onto <paramref name="device"/>, found
    /// by reflection like <see cref="MakeOptimizerStateContiguous"/>.</summary>
    static void MoveOptimizerState(TorchSharp.Modules.OptimizerHelper optimizer, Device device)
    {
        foreach (var st in optimizer.state_dict().State)
        {
            if (st is null) continue;
            foreach (var f in st.GetType().GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
                if (f.FieldType == typeof(Tensor) && f.GetValue(st) is Tensor t && !t.IsInvalid && (t.device_type != device.type || t.device_index != device.index))
                {
                    f.SetValue(st, t.to(device));
                    t.Dispose();
                }
        }
    }

    /// <summary>Restores a method's modules and the optimizer from a resumable checkpoint.</summary>
    public static CheckpointMeta Restore(string path, ITrainableMethod method, TorchSharp.Modules.OptimizerHelper optimizer, string? expectedMethod = null)
    {
        var meta = CheckpointFile.ReadMeta(path, out long off);
        if (!meta.HasTrainingState) throw new InvalidDataException($"checkpoint '{path}' holds weights only; it cannot resume training");
        if (expectedMethod != null && meta.Method != expectedMethod)
            throw new InvalidDataException($"checkpoint '{path}' was trained with method '{meta.Method}'; it cannot resume as '{expectedMethod}' (resume with --method {meta.Method})");
        try
        {
            using var fs = File.OpenRead(path);
            fs.Position = off;
            using var r = new BinaryReader(fs);
            using (var scratch = CheckpointFile.CreateNetwork(meta)) scratch.load(r); // skip the inference copy
            foreach (var m in method.StatefulModules) LoadModule(r, m);
            MakeOptimizerStateContiguous(optimizer); // Adam-family moments exist (channels_last) before the first step
            optimizer.load_state_dict(r);
            // the file is device-free: module tensors are read on the host and copied into the modules wherever they
            // are (TorchSharp's Load); optimizer state the reader created goes to the parameters' device
            MoveOptimizerState(optimizer, ComputeDevice.Of(method.TrainableModules[0]));
        }
        catch (Exception e) when (e is not InvalidDataException)
        {
            throw new InvalidDataException($"checkpoint '{path}': training state cannot be restored ({e.Message})", e);
        }
        return meta;
    }
}
