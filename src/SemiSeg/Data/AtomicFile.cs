namespace SemiSeg.Data;

/// <summary>Writes files through a temporary sibling and a rename, so an interrupted write never leaves half a
/// file under the final name and never destroys the previous version.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>Deletes temporary files in <paramref name="dir"/> that an atomic write of a process that no longer
    /// runs left behind (killed mid-write); returns how many.</summary>
    public static int RemoveOrphans(string dir)
    {
        int removed = 0;
        foreach (var f in Directory.EnumerateFiles(dir, ".*.tmp"))
        {
            var m = System.Text.RegularExpressions.Regex.Match(Path.GetFileName(f), @"^\..+\.(\d+)\.[0-9a-f]{32}\.tmp$");
            if (!m.Success || !int.TryParse(m.Groups[1].Value, out int pid) || IsRunning(pid)) continue;
            try { File.Delete(f); removed++; } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
        return removed;
    }

    static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s, leaveOpen: true); w.Write(text); });

    /// <summary>Refuses to write an output over one of the inputs.</summary>
    public static void EnsureNotInput(string output, IEnumerable<string> inputs)
    {
        var o = Path.GetFullPath(output);
        foreach (var i in inputs)
            if (string.Equals(Path.GetFullPath(i), o, StringComparison.Ordinal))
                throw new IOException($"refusing to write '{output}': it is an input file and would be overwritten");
    }
}
