using SemiSeg.Inference;
using System.Globalization;
using SemiSeg.Data;

namespace SemiSeg.Training;

/// <summary>
/// A run folder belongs to one training run at a time. Opening it takes an exclusive lock on <c>.lock</c> (an OS file
/// lock, released by the kernel when the process ends in any way, so a crash leaves nothing to clean up), refuses a
/// folder that already holds a run unless resuming (any of last.ckpt, best.ckpt, validation.csv, train.log), refuses
/// --resume without last.ckpt, and removes temporary files that a killed atomic write left behind.
/// </summary>
public sealed class RunFolder : IDisposable
{
    public const string LockName = ".lock";
    static readonly string[] RunFiles = { "last.ckpt", "best.ckpt", "validation.csv", "train.log" };

    readonly FileStream _lock;
    public string Dir { get; }
    /// <summary>Temporary files of earlier, killed writes that opening removed.</summary>
    public int OrphansRemoved { get; }

    RunFolder(string dir, FileStream lockStream, int orphans) { Dir = dir; _lock = lockStream; OrphansRemoved = orphans; }

    public static RunFolder Open(string dir, bool resume)
    {
        if (File.Exists(dir)) throw new IOException($"--output '{dir}' is a file, not a folder");
        if (resume && !File.Exists(Path.Combine(dir, "last.ckpt")))
            throw new IOException($"--resume: '{dir}' has no last.ckpt to resume from");
        Directory.CreateDirectory(dir);
        var lockPath = Path.Combine(dir, LockName);
        FileStream lockStream;
        try
        {
            // FileShare.None takes an exclusive, non-blocking flock on Unix (LockFileEx-like sharing on Windows)
            lockStream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new IOException($"'{dir}' is in use by another training run (it holds '{lockPath}'); wait for it to end or choose another --output", e);
        }
        try
        {
            lockStream.SetLength(0);
            var text = System.Text.Encoding.ASCII.GetBytes($"pid {Environment.ProcessId} since {DateTime.UtcNow:O}\n");
            lockStream.Write(text);
            lockStream.Flush();
            var existing = RunFiles.Where(f => File.Exists(Path.Combine(dir, f))).ToArray();
            if (!resume && existing.Length > 0)
                throw new IOException($"'{dir}' already holds a training run ({string.Join(", ", existing)}); " +
                                      (existing.Contains("last.ckpt") ? "pass --resume to continue it or choose another --output" : "it has no last.ckpt to resume from; choose another --output"));
            return new RunFolder(dir, lockStream, AtomicFile.RemoveOrphans(dir));
        }
        catch
        {
            lockStream.Dispose();
            throw;
        }
    }

    /// <summary>
    /// On resume from iteration <paramref name="start"/>: drops validation.csv rows after it (a killed run validated
    /// past its last save; the resumed run repeats those validations, so each iteration keeps one row), and returns
    /// the best score to beat: the highest of last.ckpt's record, best.ckpt's own metadata and every validation.csv
    /// row, so a better best.ckpt written after the last save is never replaced by a worse model.
    /// </summary>
    public (double bestDice, long bestIt) PrepareResume(long start, double bestDice, long bestIt)
    {
        void Consider(double d, long it) { if (double.IsFinite(d) && (d > bestDice || double.IsNegativeInfinity(bestDice))) { bestDice = d; bestIt = it; } }
        var bestPath = Path.Combine(Dir, "best.ckpt");
        if (File.Exists(bestPath))
        {
            var m = CheckpointFile.ReadMeta(bestPath, out _);
            Consider(m.BestMetric, m.BestIteration);
        }
        var csv = Path.Combine(Dir, "validation.csv");
        if (File.Exists(csv))
        {
            var lines = File.ReadAllLines(csv);
            var keep = new List<string>();
            foreach (var (line, i) in lines.Select((l, i) => (l, i)))
            {
                if (i == 0 || line.Length == 0) { if (line.Length > 0) keep.Add(line); continue; }
                var cells = line.Split(',');
                if (!long.TryParse(cells[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out long it)) { keep.Add(line); continue; }
                if (cells.Length > 1 && double.TryParse(cells[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double d)) Consider(d, it);
                else Consider(0, it); // the trainer counts an undefined mean Dice as 0
                if (it <= start) keep.Add(line);
            }
            if (keep.Count != lines.Count(l => l.Length > 0)) AtomicFile.WriteAllText(csv, string.Concat(keep.Select(l => l + "\n")));
        }
        return (bestDice, bestIt);
    }

    public void Dispose() => _lock.Dispose();
}
