using System.Globalization;
using System.Text;

namespace SemiSeg.Grid;

/// <summary>Resources asked of Slurm for every array task (passed through to sbatch as given).</summary>
public sealed record SlurmResources(string? Partition = null, string? Gres = null, string? Time = null, int CpusPerTask = 2,
    string? Memory = null, int? MaxParallel = null, string? Account = null, string? Qos = null, int SignalSeconds = 120);

/// <summary>
/// A grid as a Slurm job array: one array task per unfinished run, each running `semiseg grid task FILE --index I`
/// (train, resuming from last.ckpt when there is one, then evaluate). Preemption and time limits: Slurm sends
/// SIGTERM to the task (and, with --signal, SIGUSR1 to the batch shell <see cref="SlurmResources.SignalSeconds"/>
/// before the time limit, which the script forwards as SIGTERM); SemiSeg finishes its iteration, writes last.ckpt and
/// exits 143; the script then requeues its own array task (`scontrol requeue`), unless `semiseg grid cancel` marked
/// the grid cancelled. The requeued task resumes. A cluster whose slurm.conf has RequeueExit=143 requeues it by itself.
/// </summary>
public static class SlurmArray
{
    public static string CancelledMarker(GridSpec spec) => Path.Combine(GridState.BookDir(spec), "cancelled");
    public static string JobsFile(GridSpec spec) => Path.Combine(GridState.BookDir(spec), "slurm-jobs.txt");

    /// <summary>"0,2,5-7": Slurm's --array syntax for the given indices.</summary>
    public static string ArraySpec(IEnumerable<int> indices)
    {
        var sorted = indices.Distinct().OrderBy(i => i).ToList();
        var parts = new List<string>();
        for (int i = 0; i < sorted.Count;)
        {
            int j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1) j++;
            parts.Add(j == i ? sorted[i].ToString(CultureInfo.InvariantCulture) : $"{sorted[i]}-{sorted[j]}");
            i = j + 1;
        }
        return string.Join(",", parts);
    }

    /// <param name="semiseg">the command that runs SemiSeg on the compute node (e.g. /opt/semiseg/semiseg or
    /// "dotnet /path/SemiSeg.Cli.dll"), inserted as written.</param>
    public static string Script(GridSpec spec, string semiseg, SlurmResources res, IReadOnlyCollection<int> indices)
    {
        if (indices.Count == 0) throw new ArgumentException("no unfinished runs to submit");
        string logs = Path.Combine(GridState.BookDir(spec), "logs");
        var sb = new StringBuilder();
        sb.Append("#!/bin/bash\n");
        sb.Append($"# SemiSeg grid {Quote(spec.File)}: {indices.Count} run(s) as a Slurm job array (written by `semiseg grid submit`)\n");
        sb.Append($"#SBATCH --job-name={JobName(spec)}\n");
        sb.Append($"#SBATCH --array={ArraySpec(indices)}{(res.MaxParallel is int p ? "%" + p.ToString(CultureInfo.InvariantCulture) : "")}\n");
        sb.Append($"#SBATCH --output={logs}/slurm-%A_%a.log\n");
        sb.Append("#SBATCH --open-mode=append\n#SBATCH --requeue\n");
        sb.Append($"#SBATCH --cpus-per-task={res.CpusPerTask.ToString(CultureInfo.InvariantCulture)}\n");
        sb.Append($"#SBATCH --signal=B:USR1@{res.SignalSeconds.ToString(CultureInfo.InvariantCulture)}\n");
        if (res.Partition is not null) sb.Append($"#SBATCH --partition={res.Partition}\n");
        if (res.Gres is not null) sb.Append($"#SBATCH --gres={res.Gres}\n");
        if (res.Time is not null) sb.Append($"#SBATCH --time={res.Time}\n");
        if (res.Memory is not null) sb.Append($"#SBATCH --mem={res.Memory}\n");
        if (res.Account is not null) sb.Append($"#SBATCH --account={res.Account}\n");
        if (res.Qos is not null) sb.Append($"#SBATCH --qos={res.Qos}\n");
        sb.Append($$"""
            set -u
            echo "[$(date -u '+%F %T')] task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname) (restart ${SLURM_RESTART_COUNT:-0})"
            {{semiseg}} grid task {{Quote(spec.File)}} --output {{Quote(spec.Output)}} --index "$SLURM_ARRAY_TASK_ID" --threads "${SLURM_CPUS_PER_TASK:-{{res.CpusPerTask}}}" &
            child=$!
            # SIGTERM (preemption, scontrol requeue, scancel) and SIGUSR1 (--signal before the time limit) reach SemiSeg as
            # SIGTERM: it finishes the iteration, writes last.ckpt and exits 143
            trap 'kill -TERM "$child" 2>/dev/null' TERM USR1
            wait "$child"; rc=$?
            while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
            if [ "$rc" -eq 143 ] && [ ! -e {{Quote(CancelledMarker(spec))}} ]; then
              echo "[$(date -u '+%F %T')] stopped by a signal after saving last.ckpt: requeueing ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
              scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" 2>/dev/null || true
            fi
            exit "$rc"

            """);
        return sb.ToString();
    }

    public static IReadOnlyList<string> SbatchArgs(string scriptPath) => new[] { "--parsable", scriptPath };

    static string JobName(GridSpec spec) =>
        "semiseg-" + new string(Path.GetFileNameWithoutExtension(spec.File).Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());

    /// <summary>A word for bash: single-quoted unless it is plainly safe.</summary>
    public static string Quote(string s) =>
        s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || "/._-+=:,@".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";
}
