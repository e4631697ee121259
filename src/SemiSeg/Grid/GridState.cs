using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using SemiSeg.Data;

namespace SemiSeg.Grid;

public enum RunState
{
    /// <summary>Nothing written yet.</summary>
    Pending,
    /// <summary>Training stopped before its last iteration (signal, preemption, crash) and left last.ckpt: the next
    /// attempt resumes from it.</summary>
    Interrupted,
    /// <summary>A training process holds the run folder's lock now.</summary>
    Running,
    /// <summary>Training finished; the evaluation has not (yet) written its metrics.</summary>
    Trained,
    Done,
    /// <summary>The last attempt ended with an error that a retry would repeat (bad input: exit code 2).</summary>
    Failed,
}

/// <summary>What a grid's bookkeeping folder (OUTPUT/.grid) records per run: attempts and how each ended. Training
/// and evaluation outputs themselves are the ordinary run folder; the state is read from both.</summary>
public sealed record RunStatus(string Name, int Attempts, int? LastExitCode, string? Phase, string? Updated, string? SlurmJob);

public static class GridState
{
    public const string Folder = ".grid";

    public static string BookDir(GridSpec spec) => Path.Combine(spec.Output, Folder);
    public static string LogPath(GridSpec spec, GridRun run) => Path.Combine(BookDir(spec), "logs", run.Name + ".log");
    static string StatusPath(GridSpec spec, GridRun run) => Path.Combine(BookDir(spec), "status", run.Name + ".json");
    static string TrainedMarker(GridSpec spec, GridRun run) => Path.Combine(BookDir(spec), "status", run.Name + ".trained");

    public static RunState Of(GridSpec spec, GridRun run)
    {
        if (run.MetricsPath is not null ? File.Exists(run.MetricsPath) : File.Exists(TrainedMarker(spec, run))) return RunState.Done;
        if (IsLocked(run.Folder)) return RunState.Running;
        if (File.Exists(TrainedMarker(spec, run))) return RunState.Trained;
        if (ReadStatus(spec, run) is { LastExitCode: 2 }) return RunState.Failed;
        if (File.Exists(Path.Combine(run.Folder, "last.ckpt"))) return RunState.Interrupted;
        return RunState.Pending;
    }

    /// <summary>True while a process holds the run folder's lock (Training.RunFolder takes an exclusive flock on .lock).</summary>
    public static bool IsLocked(string runFolder)
    {
        var lockPath = Path.Combine(runFolder, ".lock");
        if (!File.Exists(lockPath)) return false;
        try { using var _ = new FileStream(lockPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None); return false; }
        catch (IOException) { return true; }
        catch (UnauthorizedAccessException) { return false; }
    }

    public static RunStatus? ReadStatus(GridSpec spec, GridRun run)
    {
        var p = StatusPath(spec, run);
        if (!File.Exists(p)) return null;
        try { return JsonSerializer.Deserialize<RunStatus>(File.ReadAllText(p)); }
        catch (JsonException) { return null; } // a status file is bookkeeping: unreadable means unknown, the run folder still decides
    }

    public static void Record(GridSpec spec, GridRun run, string phase, int? exitCode, bool newAttempt)
    {
        var old = ReadStatus(spec, run);
        var status = new RunStatus(run.Name, (old?.Attempts ?? 0) + (newAttempt ? 1 : 0), exitCode, phase,
            DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
            Environment.GetEnvironmentVariable("SLURM_ARRAY_JOB_ID") is { } j ? $"{j}_{Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID")}" : old?.SlurmJob);
        Directory.CreateDirectory(Path.GetDirectoryName(StatusPath(spec, run))!);
        AtomicFile.WriteAllText(StatusPath(spec, run), JsonSerializer.Serialize(status, new JsonSerializerOptions { WriteIndented = true }));
        if (phase == "trained") AtomicFile.WriteAllText(TrainedMarker(spec, run), status.Updated + "\n");
    }

    static readonly Regex IterationLine = new(@"\] it (?<it>\d+) ", RegexOptions.Compiled);
    static readonly Regex OtherIteration = new(@"(?:at iteration|stopped after|finished) (?<it>\d+)", RegexOptions.Compiled);

    /// <summary>The last iteration the run logged (iterations.jsonl, or train.log's text for older runs and for the
    /// lines that file does not hold: resumed, stopped, finished), for a progress column (display only; nothing
    /// depends on it).</summary>
    public static long? LastLoggedIteration(GridRun run)
    {
        long? fromData = Training.IterationLog.Read(run.Folder) is { Count: > 0 } records ? records[^1].Iteration : null;
        var log = Path.Combine(run.Folder, "train.log");
        if (!File.Exists(log)) return fromData;
        long? last = null;
        foreach (var line in File.ReadLines(log))
        {
            var m = IterationLine.Match(line);
            if (!m.Success) m = OtherIteration.Match(line);
            if (m.Success) last = long.Parse(m.Groups["it"].Value, CultureInfo.InvariantCulture);
        }
        return last is null ? fromData : fromData is null ? last : Math.Max(last.Value, fromData.Value);
    }

    /// <summary>Mean foreground Dice of the run's evaluation (metrics.json's "mean_dice" or "dice"), if it has one.</summary>
    public static double? EvaluatedDice(GridRun run)
    {
        if (run.MetricsPath is null || !File.Exists(run.MetricsPath)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(run.MetricsPath));
            foreach (var key in new[] { "mean_dice", "dice", "Dice" })
                if (doc.RootElement.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number) return v.GetDouble();
            if (doc.RootElement.TryGetProperty("mean", out var mean) && mean.ValueKind == JsonValueKind.Object && mean.TryGetProperty("dice", out var d) && d.ValueKind == JsonValueKind.Number) return d.GetDouble();
        }
        catch (JsonException) { }
        return null;
    }
}
