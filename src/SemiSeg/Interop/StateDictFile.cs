using System.Collections;
using SemiSeg.Data;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace SemiSeg.Interop;

public enum WeightsFormat { Pt, Safetensors, Onnx }

/// <summary>
/// PyTorch state-dict files: <c>torch.save(model.state_dict())</c> archives (.pt/.pth, the zip format PyTorch writes
/// since 1.6) and safetensors, read and written with TorchSharp.PyBridge. Reading also accepts what training scripts
/// commonly save: the state dict inside a dict under "state_dict"/"model"/"net"/"model_state_dict", and a
/// DataParallel "module." prefix on every key.
/// </summary>
public static class StateDictFile
{
    /// <summary>True when the file looks like a PyTorch state dict by content (zip archive or safetensors header),
    /// whatever its name.</summary>
    public static bool Recognise(string path)
    {
        if (!File.Exists(path)) return false;
        using var fs = File.OpenRead(path);
        var head = new byte[9];
        int n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (n >= 4 && head[0] == 0x50 && head[1] == 0x4b && head[2] == 0x03 && head[3] == 0x04) return true; // zip (torch.save)
        return n == 9 && head[8] == (byte)'{' && BitConverter.ToUInt64(head, 0) < (ulong)fs.Length; // safetensors: u64 length + JSON
    }

    public static WeightsFormat FormatOf(string path)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        return ext switch
        {
            ".pt" or ".pth" or ".bin" => WeightsFormat.Pt,
            ".safetensors" => WeightsFormat.Safetensors,
            ".onnx" => WeightsFormat.Onnx,
            _ => throw new ArgumentException($"'{path}': unknown weights format '{ext}' (expected .pt, .pth, .safetensors or .onnx)"),
        };
    }

    /// <summary>Reads a state dict; the caller owns (disposes) the tensors.</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"weights file '{path}' does not exist", path);
        bool zip;
        using (var fs = File.OpenRead(path))
        {
            var head = new byte[4];
            zip = fs.ReadAtLeast(head, 4, throwOnEndOfStream: false) == 4 && head[0] == 0x50 && head[1] == 0x4b && head[2] == 0x03 && head[3] == 0x04;
        }
        Dictionary<string, Tensor>? sd = null;
        Hashtable? pickled = null;
        try
        {
            using var fs = File.OpenRead(path);
            if (zip) pickled = PyTorchUnpickler.UnpickleStateDict(fs);
            else sd = Safetensors.LoadStateDict(fs);
        }
        // a damaged zip throws InvalidDataException ("Central Directory corrupt") without the file's name: every
        // reader failure is reported naming the file
        catch (Exception e) when (e is not FileNotFoundException)
        {
            throw new InvalidDataException($"'{path}': not a readable PyTorch state dict (.pt/.pth written by torch.save, or .safetensors): {e.Message}", e);
        }
        sd ??= Flatten(pickled!, path);
        if (sd.Count == 0) throw new InvalidDataException($"'{path}': the file holds no tensors");
        if (sd.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal))) // saved from nn.DataParallel
            sd = sd.ToDictionary(kv => kv.Key["module.".Length..], kv => kv.Value);
        return sd;
    }

    static readonly string[] Wrappers = { "state_dict", "model", "net", "model_state_dict", "network" };

    static Dictionary<string, Tensor> Flatten(Hashtable table, string path)
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (DictionaryEntry e in table)
            if (e.Key is string k && e.Value is Tensor t) tensors[k] = t;
        if (tensors.Count > 0) return tensors;
        foreach (var w in Wrappers)
            if (table[w] is Hashtable inner) return Flatten(inner, path);
        var keys = string.Join(", ", table.Keys.Cast<object>().Select(k => k.ToString()).Take(8));
        throw new InvalidDataException($"'{path}': a torch.save file without a state dict (top-level keys: {keys}); save model.state_dict()");
    }

    /// <summary>Writes a state dict atomically (.pt: the torch.save zip format; .safetensors).</summary>
    public static void Write(string path, WeightsFormat format, IReadOnlyList<(string name, Tensor value)> entries)
    {
        // the pickler and the safetensors writer copy raw bytes: contiguous CPU copies with storage offset 0
        using var scope = NewDisposeScope();
        var copies = entries.Select(e => (e.name, t: e.value.detach().cpu().contiguous().clone())).ToList();
        AtomicFile.Write(path, s =>
        {
            if (format == WeightsFormat.Pt)
            {
                var table = new Hashtable();
                foreach (var (name, t) in copies) table[name] = t;
                PyTorchPickler.PickleStateDict(s, table, leaveOpen: true);
            }
            else if (format == WeightsFormat.Safetensors)
                Safetensors.SaveStateDict(s, copies.ToDictionary(c => c.name, c => c.t), leaveOpen: true);
            else throw new ArgumentException($"'{path}': {format} is not a state-dict format");
        });
    }
}
