using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SemiSeg.Data;
using static TorchSharp.torch;

namespace SemiSeg.Training;

/// <summary>
/// provenance.json in every run folder: what produced the run, so a result can be traced and repeated. One entry per
/// start or resume (a resumed run may run on another build or machine): SemiSeg's version and the git commit it was
/// built from, the TorchSharp and libtorch versions, the device (CPU model, cores, torch threads), the OS and .NET
/// runtime, the command line, and a SHA-256 fingerprint of each data list (labeled, unlabeled, val, test: every
/// entry's case name, slice, image and label file names and sizes, in order), so two runs on the same split show the
/// same fingerprints and a changed list or file shows at once.
/// </summary>
public static class Provenance
{
    public const string FileName = "provenance.json";

    public static JsonObject Describe(string dataName, IReadOnlyDictionary<string, IEnumerable<string>> lists, string kind)
    {
        var info = typeof(Provenance).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        var plus = info.IndexOf('+');
        var data = new JsonObject { ["name"] = dataName };
        foreach (var (name, entries) in lists)
        {
            int n = 0;
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            foreach (var e in entries) { sha.AppendData(Encoding.UTF8.GetBytes(e + "\n")); n++; }
            data[name] = new JsonObject { ["count"] = n, ["sha256"] = Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant() };
        }
        return new JsonObject
        {
            ["kind"] = kind,
            ["time_utc"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["semiseg_version"] = plus < 0 ? info : info[..plus],
            ["semiseg_commit"] = plus < 0 ? "unknown" : info[(plus + 1)..],
            ["torchsharp_version"] = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString() ?? "unknown",
            ["libtorch_version"] = LibTorchVersion(),
            ["device"] = new JsonObject
            {
                ["type"] = "cpu",
                ["cpu"] = CpuModel(),
                ["logical_cores"] = Environment.ProcessorCount,
                ["torch_threads"] = get_num_threads(),
            },
            ["os"] = RuntimeInformation.OSDescription,
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
            ["command_line"] = string.Join(" ", Environment.GetCommandLineArgs().Skip(1)),
            ["data"] = data,
        };
    }

    /// <summary>The device the run computes on ("cpu" or "cuda:N"), the TorchSharp backend it was built with, and the
    /// CUDA device count where CUDA is in use.</summary>
    public static JsonObject WithDevice(JsonObject entry, Device device)
    {
        var d = (JsonObject)entry["device"]!;
        d["type"] = Runtime.ComputeDevice.Describe(device);
        d["backend"] = Runtime.ComputeDevice.Backend;
        if (device.type == TorchSharp.DeviceType.CUDA) d["cuda_devices"] = cuda.device_count();
        return entry;
    }

    /// <summary>The data lists of a 2D run: slices (case, slice index, files) and validation/test volumes.</summary>
    public static JsonObject Describe(DatasetManifest m) => Describe(m.Name, new Dictionary<string, IEnumerable<string>>
    {
        ["labeled"] = m.Labeled.Select(s => $"{Entry(s.Case)}\t{s.Z}"),
        ["unlabeled"] = m.Unlabeled.Select(s => $"{Entry(s.Case)}\t{s.Z}"),
        ["val"] = m.Val.Select(Entry),
        ["test"] = m.Test.Select(Entry),
    }, "2d");

    /// <summary>The data lists of a 3D run (volumes).</summary>
    public static JsonObject Describe(VolumeSplit v) => Describe(v.Name, new Dictionary<string, IEnumerable<string>>
    {
        ["labeled"] = v.Labeled.Select(Entry), ["unlabeled"] = v.Unlabeled.Select(Entry), ["val"] = v.Val.Select(Entry), ["test"] = v.Test.Select(Entry),
    }, "3d");

    static string Entry(CaseRef c) => $"{c.Name}\t{FileId(c.ImagePath)}\t{(c.LabelPath is null ? "-" : FileId(c.LabelPath))}";

    /// <summary>File name and size: moving the data folder keeps the fingerprint, changing a file's contents' size does not.</summary>
    static string FileId(string path)
    {
        long size = -1;
        try { size = new FileInfo(path).Length; } catch (IOException) { } catch (UnauthorizedAccessException) { }
        return $"{Path.GetFileName(path)}:{size}";
    }

    /// <summary>Appends this start (or resume) to the run folder's provenance.json (atomically).</summary>
    public static void Record(string runDir, JsonObject entry, bool resume)
    {
        entry["event"] = resume ? "resume" : "start";
        var path = Path.Combine(runDir, FileName);
        var runs = new JsonArray();
        if (File.Exists(path))
        {
            try { if (JsonNode.Parse(File.ReadAllText(path))?["runs"] is JsonArray old) runs = (JsonArray)old.DeepClone(); }
            catch (JsonException) { } // a damaged record is replaced, not fatal to training
        }
        runs.Add(entry);
        AtomicFile.WriteAllText(path, new JsonObject { ["runs"] = runs }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    static string CpuModel()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal)) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    /// <summary>libtorch's version, from the libtorch package the application was built against (its .deps.json);
    /// TorchSharp exposes no call for it.</summary>
    static string LibTorchVersion()
    {
        try
        {
            foreach (var deps in Directory.EnumerateFiles(AppContext.BaseDirectory, "*.deps.json"))
            {
                var m = Regex.Match(File.ReadAllText(deps), "\"libtorch-(?:cpu|cuda)(?:-[a-z0-9.-]+)?/([0-9][0-9.]*)\"");
                if (m.Success) return m.Groups[1].Value;
            }
        }
        catch (IOException) { }
        return "unknown";
    }
}
