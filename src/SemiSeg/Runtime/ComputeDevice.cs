using System.Globalization;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Runtime;

/// <summary>
/// The one place a run's device is chosen (`--device cpu|cuda|cuda:N|auto`) and batches are moved to it. auto is CUDA
/// (device 0) where libtorch reports a usable CUDA device, else the CPU; an explicit cuda on a CPU-only build or a
/// machine without a usable GPU fails with one message that says which. Networks are built on the host and moved
/// (<see cref="Place"/>); tensors a step creates take their device from its inputs; batches are pinned and copied
/// without blocking (<see cref="Upload"/>).
/// </summary>
public static class ComputeDevice
{
    public const string Help = "Device: cpu, cuda (GPU 0), cuda:N, or auto (CUDA when a GPU is usable, else cpu)";

    static readonly Regex Spec = new(@"^(cpu|auto|cuda)(?::(\d+))?$", RegexOptions.CultureInvariant);

    /// <summary>The device <paramref name="spec"/> names (null or empty: auto).</summary>
    public static Device Resolve(string? spec)
    {
        var s = string.IsNullOrWhiteSpace(spec) ? "auto" : spec.Trim().ToLowerInvariant();
        var m = Spec.Match(s);
        if (!m.Success || (m.Groups[2].Success && m.Groups[1].Value != "cuda"))
            throw new ArgumentException($"--device '{spec}': expected cpu, cuda, cuda:N or auto");
        switch (m.Groups[1].Value)
        {
            case "cpu": return CPU;
            case "auto": return CudaAvailable() ? new Device(DeviceType.CUDA, 0) : CPU;
        }
        int index = m.Groups[2].Success ? int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) : 0;
        if (!CudaAvailable())
            throw new ArgumentException($"--device {s}: {CudaUnavailableReason()}");
        int count = cuda.device_count();
        if (index >= count)
            throw new ArgumentException($"--device {s}: this machine has {count} CUDA device{(count == 1 ? "" : "s")} (cuda:0{(count > 1 ? $"..cuda:{count - 1}" : "")})");
        return new Device(DeviceType.CUDA, index);
    }

    /// <summary>Whether libtorch can run on a CUDA device here (false on the TorchSharp-cpu build, whose libtorch has no
    /// CUDA backend, and where no driver or GPU is found).</summary>
    public static bool CudaAvailable()
    {
        try { return cuda.is_available(); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException or NotSupportedException) { return false; }
    }

    /// <summary>Why CUDA cannot be used: the build's backend, or the machine.</summary>
    public static string CudaUnavailableReason() => Backend == "cpu"
        ? "this SemiSeg is built on TorchSharp-cpu, whose libtorch has no CUDA backend; build with -p:TorchBackend=cuda (see README) or use --device cpu"
        : "libtorch finds no usable CUDA device on this machine (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides it); use --device cpu or auto";

    /// <summary>The TorchSharp backend this build references (cpu or cuda), from the libtorch package in the
    /// application's dependency file.</summary>
    public static string Backend
    {
        get
        {
            try
            {
                foreach (var deps in Directory.EnumerateFiles(AppContext.BaseDirectory, "*.deps.json"))
                {
                    var text = File.ReadAllText(deps);
                    if (text.Contains("\"libtorch-cuda", StringComparison.Ordinal) || text.Contains("\"TorchSharp-cuda", StringComparison.Ordinal)) return "cuda";
                }
            }
            catch (IOException) { }
            return "cpu";
        }
    }

    /// <summary>A description for logs, config.json and provenance: "cpu" or "cuda:N".</summary>
    public static string Describe(Device device) => device.type == DeviceType.CUDA ? $"cuda:{Math.Max(0, device.index)}" : device.type.ToString().ToLowerInvariant();

    /// <summary>The device a module's weights are on (its first parameter or buffer; the CPU for a module without).</summary>
    public static Device Of(nn.Module module)
    {
        foreach (var p in module.parameters()) return p.device;
        foreach (var b in module.buffers()) return b.device;
        return CPU;
    }

    /// <summary>Moves every module (parameters and buffers) to <paramref name="device"/>; a no-op on the CPU. TorchSharp's
    /// Module.to re-creates each parameter with requires_grad on, so the frozen ones (EMA teachers) are frozen again.</summary>
    public static void Place(IEnumerable<nn.Module> modules, Device device)
    {
        if (device.type == DeviceType.CPU) return;
        foreach (var m in modules.Distinct())
        {
            var frozen = m.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => p.name).ToHashSet();
            m.to(device);
            foreach (var (name, p) in m.named_parameters())
                if (frozen.Contains(name)) p.requires_grad_(false);
        }
    }

    /// <summary>
    /// A host array as a tensor on <paramref name="device"/>. On a CUDA device the host tensor is pinned (page-locked)
    /// and copied without blocking, so the copy overlaps the work already queued on the GPU; on the CPU the tensor is
    /// the array's copy, as before. Disposing the pinned tensor right after the copy is safe: libtorch's caching host
    /// allocator records the copy's stream and reuses the block only once the copy has completed.
    /// </summary>
    public static Tensor Upload(float[] data, long[] shape, Device device) => Upload(tensor(data, shape, device: CPU), device);

    public static Tensor Upload(long[] data, long[] shape, Device device) => Upload(tensor(data, shape, device: CPU), device);

    static Tensor Upload(Tensor host, Device device)
    {
        if (device.type == DeviceType.CPU) return host;
        using (host)
        {
            using var pinned = host.pin_memory();
            return pinned.to(device, non_blocking: true);
        }
    }
}
