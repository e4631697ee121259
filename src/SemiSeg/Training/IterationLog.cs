using System.Globalization;
using System.Text.Json;

namespace SemiSeg.Training;

/// <summary>One logged iteration: the total loss, each loss term by name, the learning rate, the speed over the
/// window since the previous log line and the share of that window spent waiting for data.</summary>
public sealed record IterationRecord(long Iteration, double Loss, double LearningRate, IReadOnlyDictionary<string, double> Terms,
    double ItersPerSecond, double DataWaitFraction, string Time);

/// <summary>
/// RUN/iterations.jsonl: every --log-every iteration as one JSON object per line (iteration, loss, lr, terms,
/// it_per_s, data_wait, time), so reports, curves and grids read a run's course as data rather than parsing
/// train.log's text. Appended and flushed line by line; a resumed run appends the iterations after its checkpoint
/// again, and <see cref="Read"/> keeps the latest values (a line whose iteration does not exceed the previous one's
/// starts a new segment that replaces the rest). A line cut short by a crash is skipped. NaN values are written as
/// null.
/// </summary>
public sealed class IterationLog : IDisposable
{
    public const string FileName = "iterations.jsonl";
    readonly StreamWriter _w;

    public IterationLog(string runFolder)
    {
        var path = Path.Combine(runFolder, FileName);
        bool cut = false; // a line a crash cut short gets its end, so the next record starts a line of its own
        if (File.Exists(path) && new FileInfo(path).Length > 0)
            using (var f = File.OpenRead(path)) { f.Seek(-1, SeekOrigin.End); cut = f.ReadByte() != '\n'; }
        _w = new StreamWriter(path, append: true) { AutoFlush = true };
        if (cut) _w.WriteLine();
    }

    public void Append(IterationRecord r)
    {
        using var buffer = new MemoryStream();
        using (var j = new Utf8JsonWriter(buffer))
        {
            j.WriteStartObject();
            j.WriteNumber("iteration", r.Iteration);
            Number(j, "loss", r.Loss);
            Number(j, "lr", r.LearningRate);
            j.WriteStartObject("terms");
            foreach (var (k, v) in r.Terms) Number(j, k, v);
            j.WriteEndObject();
            Number(j, "it_per_s", r.ItersPerSecond);
            Number(j, "data_wait", r.DataWaitFraction);
            j.WriteString("time", r.Time);
            j.WriteEndObject();
        }
        _w.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }

    static void Number(Utf8JsonWriter j, string name, double v)
    {
        if (double.IsFinite(v)) j.WriteNumber(name, v); else j.WriteNull(name);
    }

    /// <summary>The run's logged iterations in order (empty when the run has no iterations.jsonl).</summary>
    public static List<IterationRecord> Read(string runFolder)
    {
        var path = Path.Combine(runFolder, FileName);
        var records = new List<IterationRecord>();
        if (!File.Exists(path)) return records;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0) continue;
            IterationRecord r;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var o = doc.RootElement;
                var terms = new Dictionary<string, double>(StringComparer.Ordinal);
                foreach (var t in o.GetProperty("terms").EnumerateObject()) terms[t.Name] = Value(t.Value);
                r = new IterationRecord(o.GetProperty("iteration").GetInt64(), Value(o.GetProperty("loss")), Value(o.GetProperty("lr")), terms,
                    Value(o.GetProperty("it_per_s")), Value(o.GetProperty("data_wait")), o.GetProperty("time").GetString() ?? "");
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException) { continue; }
            records.RemoveAll(p => p.Iteration >= r.Iteration); // a resumed segment replaces what it repeats and what followed
            records.Add(r);
        }
        return records;
    }

    static double Value(JsonElement e) => e.ValueKind == JsonValueKind.Null ? double.NaN : e.GetDouble();

    public void Dispose() => _w.Dispose();

    internal static string Now() => DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture);
}
