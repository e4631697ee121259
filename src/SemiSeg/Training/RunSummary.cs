using System.Text.Json;
using SemiSeg.Data;
using SemiSeg.Runtime;

namespace SemiSeg.Training;

/// <summary>
/// The facts of a run that `semiseg report` needs, as data: run.json beside config.json, written atomically when the
/// run starts (method, network, data) and again when it stops (iterations, speed, best validation). Runs written
/// before run.json existed are still read from their train.log (Reporting.RunComparison).
/// </summary>
public sealed record RunSummary
{
    public const string FileName = "run.json";
    public string Method { get; init; } = "";
    /// <summary>The network (e.g. "unet", "resnet34-unet", "VNet (16 filters, dropout)").</summary>
    public string Network { get; init; } = "";
    /// <summary>The data line: dataset, labeled split and evaluation sets (runs are compared within one).</summary>
    public string Data { get; init; } = "";
    public long Iterations { get; init; }
    public long MaxIterations { get; init; }
    public bool Finished { get; init; }
    /// <summary>Seconds per iteration of the last (resumed) segment; NaN before the first one ends.</summary>
    public double SecondsPerIteration { get; init; } = double.NaN;
    public double BestValidationDice { get; init; } = double.NaN;
    public long BestIteration { get; init; }

    public void Write(string runFolder) => AtomicFile.WriteAllText(Path.Combine(runFolder, FileName), JsonSerializer.Serialize(this, JsonFormat.Options));

    /// <summary>The run.json of a folder; null where there is none (older runs).</summary>
    public static RunSummary? TryRead(string runFolder)
    {
        var path = Path.Combine(runFolder, FileName);
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize<RunSummary>(File.ReadAllText(path), JsonFormat.Options) ?? throw new JsonException("empty document"); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not a SemiSeg run.json: {e.Message}", e); }
    }
}
