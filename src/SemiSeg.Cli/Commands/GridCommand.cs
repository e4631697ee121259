using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using SemiSeg.Data;
using SemiSeg.Grid;

namespace SemiSeg.Cli.Commands;

/// <summary>`semiseg grid`: method x labeled budget x seed grids of runs, on this machine N at a time or as a Slurm
/// job array; finished runs are skipped, interrupted ones resume from last.ckpt.</summary>
internal static class GridCommand
{
    public static Command Create()
    {
        var cmd = new Command("grid", "Grids of runs (methods x labeled budgets x seeds, from a YAML grid file): run them here N at a time, or submit them to Slurm as a job array; finished runs are skipped and interrupted ones resume. `semiseg report OUTPUT` then aggregates seeds.");
        cmd.Add(List()); cmd.Add(Run()); cmd.Add(Submit()); cmd.Add(Status()); cmd.Add(Cancel()); cmd.Add(Task());
        return cmd;
    }

    static Argument<string> FileArg() => new("grid") { Description = "Grid file (YAML: data, methods, labeled, seeds, train, params, evaluate, output)" };
    static Option<string?> OutputOpt() => new("--output", "-o") { Description = "Folder of the grid's runs (default: the grid file's 'output')" };
    static Option<string?> SemisegOpt() => new("--semiseg") { Description = "The command that runs SemiSeg for each run (default: this program; on a cluster, a path every node can reach)" };

    /// <summary>The grid, with every run's train and evaluate arguments checked by the real option parser first, so a
    /// typo in the grid file fails here, naming the file, instead of in every run.</summary>
    static (GridSpec Spec, IReadOnlyList<GridRun> Runs) Load(string file, string? output)
    {
        var spec = GridSpec.Load(file, output);
        var runs = spec.Expand();
        var parser = Cli.Build();
        foreach (var run in runs.Take(1).Concat(runs.Where(r => r.Labeled != runs[0].Labeled).Take(1)))
            foreach (var args in new[] { run.TrainArgs, run.EvaluateArgs })
                if (args is not null && parser.Parse(args.ToArray()).Errors is { Count: > 0 } errors)
                    throw new InvalidDataException($"grid file '{file}': run {run.Name}: {string.Join("; ", errors.Select(e => e.Message))}");
        foreach (var m in spec.Methods)
            if (!SemiSeg.Methods.MethodRegistry.All.Any(e => e.Name == m) && !SemiSeg.Methods.Volume.VolumeMethodRegistry.All.Any(e => e.Name == m))
                throw new InvalidDataException($"grid file '{file}': unknown method '{m}' (see `semiseg methods`)");
        return (spec, runs);
    }

    static Command List()
    {
        var c = new Command("list", "Print the grid's runs (stable names, folders, the exact train/evaluate commands) without running anything");
        var file = FileArg(); var output = OutputOpt();
        c.Add(file); c.Add(output);
        c.SetAction(r =>
        {
            var (spec, runs) = Load(r.GetValue(file)!, r.GetValue(output));
            Console.WriteLine($"{runs.Count} runs in {spec.Output}");
            foreach (var run in runs)
            {
                Console.WriteLine($"[{run.Index}] {run.Name}  ({GridState.Of(spec, run)})");
                Console.WriteLine("    semiseg " + string.Join(' ', run.TrainArgs.Select(SlurmArray.Quote)));
                if (run.EvaluateArgs is not null) Console.WriteLine("    semiseg " + string.Join(' ', run.EvaluateArgs.Select(SlurmArray.Quote)));
            }
            return 0;
        });
        return c;
    }

    static Command Status()
    {
        var c = new Command("status", "Each run's state (pending, running, interrupted at iteration N, trained, done with its test Dice, failed) and the Slurm jobs' states");
        var file = FileArg(); var output = OutputOpt();
        c.Add(file); c.Add(output);
        c.SetAction(r =>
        {
            var (spec, runs) = Load(r.GetValue(file)!, r.GetValue(output));
            Console.WriteLine($"{"run",-36} {"state",-12} {"iteration",9} {"attempts",8} {"test Dice",9}  slurm");
            foreach (var run in runs)
            {
                var st = GridState.ReadStatus(spec, run);
                var dice = GridState.EvaluatedDice(run);
                Console.WriteLine($"{run.Name,-36} {GridState.Of(spec, run).ToString().ToLowerInvariant(),-12} {GridState.LastLoggedIteration(run)?.ToString(CultureInfo.InvariantCulture) ?? "-",9} {st?.Attempts ?? 0,8} {(dice is double d ? d.ToString("F4", CultureInfo.InvariantCulture) : "-"),9}  {st?.SlurmJob ?? ""}");
            }
            var counts = runs.GroupBy(run => GridState.Of(spec, run)).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key.ToString().ToLowerInvariant()}");
            Console.WriteLine(string.Join(", ", counts));
            if (File.Exists(SlurmArray.JobsFile(spec)) && Which("squeue") is string squeue)
            {
                var jobs = File.ReadAllLines(SlurmArray.JobsFile(spec)).Select(l => l.Split(' ')[0]).Where(j => j.Length > 0).ToList();
                if (jobs.Count > 0)
                {
                    var (rc, text) = Capture(squeue, new[] { "-h", "-r", "-j", string.Join(",", jobs), "-o", "%i %T %M %R" });
                    Console.WriteLine(rc == 0 ? (text.Trim().Length > 0 ? "slurm queue:\n" + text.TrimEnd() : $"slurm: no job of {string.Join(",", jobs)} is queued or running") : $"squeue failed: {text.Trim()}");
                }
            }
            return 0;
        });
        return c;
    }

    static Command Task()
    {
        var c = new Command("task", "Run one run of the grid: train (resuming from last.ckpt if there is one), then evaluate; what each Slurm array task and each local job runs");
        var file = FileArg(); var output = OutputOpt();
        var index = new Option<int>("--index") { Description = "The run's index (0-based, as `grid list` shows)", Required = true };
        var threads = new Option<int?>("--threads") { Description = "Torch threads for this run (overrides the grid's)" };
        c.Add(file); c.Add(output); c.Add(index); c.Add(threads);
        c.SetAction(r =>
        {
            var (spec, runs) = Load(r.GetValue(file)!, r.GetValue(output));
            int i = r.GetValue(index);
            if (i < 0 || i >= runs.Count) throw new ArgumentException($"--index {i}: the grid has runs 0..{runs.Count - 1}");
            return RunOne(spec, runs[i], r.GetValue(threads));
        });
        return c;
    }

    /// <summary>One run in this process: train unless finished (with --resume when last.ckpt exists), then evaluate.
    /// Returns 0 when done, 143/130 when a signal stopped training (last.ckpt written), 2 for bad input.</summary>
    internal static int RunOne(GridSpec spec, GridRun run, int? threads)
    {
        var state = GridState.Of(spec, run);
        if (state == RunState.Done) { Console.WriteLine($"{run.Name}: already done"); return 0; }
        if (state == RunState.Running) { Console.Error.WriteLine($"error: {run.Name}: another process is training it ({run.Folder} is locked)"); return 75; } // EX_TEMPFAIL
        var train = run.TrainArgs;
        var eval = run.EvaluateArgs;
        if (threads is int t)
        {
            train = GridSpec.WithOption(train, "--threads", t.ToString(CultureInfo.InvariantCulture));
            if (eval is not null) eval = GridSpec.WithOption(eval, "--threads", t.ToString(CultureInfo.InvariantCulture));
        }
        if (state != RunState.Trained)
        {
            bool resume = File.Exists(Path.Combine(run.Folder, "last.ckpt"));
            if (resume) train = train.Append("--resume").ToList();
            Console.WriteLine($"[{DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}] {run.Name}: {(resume ? "resuming from last.ckpt" : "training")}");
            GridState.Record(spec, run, "training", null, newAttempt: true);
            int rc = Cli.Run(train.ToArray());
            if (rc != 0) { GridState.Record(spec, run, "training", rc, newAttempt: false); return rc; }
            GridState.Record(spec, run, "trained", 0, newAttempt: false);
        }
        if (eval is null) return 0;
        Console.WriteLine($"[{DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}] {run.Name}: evaluating");
        int erc = Cli.Run(eval.ToArray());
        GridState.Record(spec, run, erc == 0 ? "done" : "evaluating", erc, newAttempt: false);
        return erc;
    }

    static Command Run()
    {
        var c = new Command("run", "Run the grid on this machine, N runs at a time; skips finished runs, resumes interrupted ones, retries a run that crashed. SIGTERM/Ctrl+C: every run saves last.ckpt and stops (run the same command again to continue)");
        var file = FileArg(); var output = OutputOpt(); var semiseg = SemisegOpt();
        var jobs = new Option<int>("--jobs", "-j") { Description = "Runs at a time", DefaultValueFactory = _ => 1 };
        var threads = new Option<int?>("--threads") { Description = "Torch threads per run (default: the grid's train.threads, else cores / jobs)" };
        var retries = new Option<int>("--retries") { Description = "Attempts after a run ends abnormally (each resumes from last.ckpt)", DefaultValueFactory = _ => 2 };
        c.Add(file); c.Add(output); c.Add(semiseg); c.Add(jobs); c.Add(threads); c.Add(retries);
        c.SetAction(r =>
        {
            var gridFile = Path.GetFullPath(r.GetValue(file)!);
            var (spec, runs) = Load(gridFile, r.GetValue(output));
            int n = Math.Max(1, r.GetValue(jobs));
            int? perRun = r.GetValue(threads) ?? (spec.Train.Any(t => t.Name == "threads") ? null : Math.Max(1, Environment.ProcessorCount / n));
            var (exe, prefix) = SelfCommand(r.GetValue(semiseg));
            Directory.CreateDirectory(Path.Combine(GridState.BookDir(spec), "logs"));
            var todo = new Queue<GridRun>(runs.Where(run => GridState.Of(spec, run) is not (RunState.Done or RunState.Failed or RunState.Running)));
            Console.WriteLine($"grid {spec.File}: {runs.Count} runs, {todo.Count} to do, {n} at a time{(perRun is int pr ? $", {pr} thread(s) each" : "")}; logs in {Path.Combine(GridState.BookDir(spec), "logs")}");
            var running = new Dictionary<Process, (GridRun Run, int Attempt)>();
            var failed = new List<string>();
            bool stopping = false;
            void Stop(PosixSignalContext ctx)
            {
                ctx.Cancel = true;
                if (stopping) return;
                stopping = true;
                Console.Error.WriteLine($"{ctx.Signal}: asking {running.Count} run(s) to save last.ckpt and stop (run the same command again to continue)");
                lock (running) foreach (var p in running.Keys) { try { Kill(p.Id, SigTerm); } catch (Exception) { } }
            }
            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            void Start(GridRun run, int attempt)
            {
                var args = new List<string>(prefix) { "grid", "task", spec.File, "--output", spec.Output, "--index", run.Index.ToString(CultureInfo.InvariantCulture) };
                if (perRun is int th) args.AddRange(new[] { "--threads", th.ToString(CultureInfo.InvariantCulture) });
                var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
                // exec: the child is SemiSeg itself (signals reach it); output appended to the run's grid log
                psi.ArgumentList.Add("-c"); psi.ArgumentList.Add("log=\"$1\"; shift; exec \"$@\" >> \"$log\" 2>&1"); psi.ArgumentList.Add("sh");
                psi.ArgumentList.Add(GridState.LogPath(spec, run)); psi.ArgumentList.Add(exe);
                foreach (var a in args) psi.ArgumentList.Add(a);
                var p = Process.Start(psi)!;
                lock (running) running[p] = (run, attempt);
                Console.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] start {run.Name}{(attempt > 0 ? $" (attempt {attempt + 1})" : "")}");
            }
            while (true)
            {
                while (!stopping && running.Count < n && todo.Count > 0) Start(todo.Dequeue(), 0);
                if (running.Count == 0) break;
                Process done;
                while ((done = running.Keys.FirstOrDefault(p => p.HasExited)!) is null) Thread.Sleep(200);
                var (run, attempt) = running[done];
                lock (running) running.Remove(done);
                int rc = done.ExitCode;
                var state = GridState.Of(spec, run);
                Console.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {run.Name}: exit {rc}, {state.ToString().ToLowerInvariant()}{(GridState.EvaluatedDice(run) is double d ? $", test Dice {d:F4}" : "")}");
                if (rc == 0 || stopping) continue;
                if (rc != 2 && rc != 75 && attempt < r.GetValue(retries)) { Console.WriteLine($"  {run.Name} ended abnormally: resuming it (see {GridState.LogPath(spec, run)})"); Start(run, attempt + 1); }
                else failed.Add(run.Name);
            }
            if (stopping) return 143;
            if (failed.Count > 0) { Console.Error.WriteLine($"{failed.Count} run(s) failed: {string.Join(", ", failed)} (logs in {Path.Combine(GridState.BookDir(spec), "logs")})"); return 1; }
            Console.WriteLine($"all {runs.Count} runs done; compare them with: semiseg report {spec.Output}");
            return 0;
        });
        return c;
    }

    static Command Submit()
    {
        var c = new Command("submit", "Write the grid as a Slurm job array (one task per unfinished run) and submit it with sbatch; a task stopped by SIGTERM (preemption, time limit, scontrol requeue) saves last.ckpt, is requeued and resumes");
        var file = FileArg(); var output = OutputOpt(); var semiseg = SemisegOpt();
        var partition = new Option<string?>("--partition") { Description = "sbatch --partition" };
        var gres = new Option<string?>("--gres") { Description = "sbatch --gres (e.g. gpu:1)" };
        var time = new Option<string?>("--time") { Description = "sbatch --time per run (e.g. 24:00:00)" };
        var cpus = new Option<int>("--cpus-per-task") { Description = "sbatch --cpus-per-task (also each run's torch threads)", DefaultValueFactory = _ => 2 };
        var mem = new Option<string?>("--mem") { Description = "sbatch --mem (e.g. 16G)" };
        var account = new Option<string?>("--account") { Description = "sbatch --account" };
        var qos = new Option<string?>("--qos") { Description = "sbatch --qos" };
        var maxParallel = new Option<int?>("--max-parallel") { Description = "At most this many tasks at once (--array=...%N)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Write the script and print the sbatch command without submitting" };
        foreach (var o in new Option[] { output, semiseg, partition, gres, time, cpus, mem, account, qos, maxParallel, dryRun }) c.Add(o);
        c.Add(file);
        c.SetAction(r =>
        {
            var (spec, runs) = Load(Path.GetFullPath(r.GetValue(file)!), r.GetValue(output));
            var todo = runs.Where(run => GridState.Of(spec, run) is not (RunState.Done or RunState.Running)).Select(run => run.Index).ToList();
            if (todo.Count == 0) { Console.WriteLine($"all {runs.Count} runs are done or running: nothing to submit"); return 0; }
            var (exe, prefix) = SelfCommand(r.GetValue(semiseg));
            string command = string.Join(' ', new[] { exe }.Concat(prefix).Select(SlurmArray.Quote));
            var res = new SlurmResources(r.GetValue(partition), r.GetValue(gres), r.GetValue(time), r.GetValue(cpus), r.GetValue(mem), r.GetValue(maxParallel), r.GetValue(account), r.GetValue(qos));
            Directory.CreateDirectory(Path.Combine(GridState.BookDir(spec), "logs"));
            string script = Path.Combine(GridState.BookDir(spec), "slurm-array.sh");
            AtomicFile.WriteAllText(script, SlurmArray.Script(spec, command, res, todo));
            File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            File.Delete(SlurmArray.CancelledMarker(spec)); // a new submission is not cancelled
            var sbatchArgs = SlurmArray.SbatchArgs(script);
            Console.WriteLine($"{todo.Count} of {runs.Count} runs as array tasks {SlurmArray.ArraySpec(todo)}; script {script}");
            if (r.GetValue(dryRun)) { Console.WriteLine("sbatch " + string.Join(' ', sbatchArgs)); return 0; }
            var sbatch = Which("sbatch") ?? throw new ArgumentException("sbatch not found on PATH: submit from a Slurm login node (or use --dry-run and submit the script yourself)");
            var (rc, text) = Capture(sbatch, sbatchArgs);
            if (rc != 0) throw new IOException($"sbatch refused {script}: {text.Trim()}");
            var job = text.Trim().Split(';')[0];
            File.AppendAllText(SlurmArray.JobsFile(spec), $"{job} {DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ} {SlurmArray.ArraySpec(todo)}\n");
            Console.WriteLine($"submitted job array {job}; follow it with: semiseg grid status {SlurmArray.Quote(r.GetValue(file)!)}");
            return 0;
        });
        return c;
    }

    static Command Cancel()
    {
        var c = new Command("cancel", "Cancel the grid's Slurm jobs (scancel); tasks save last.ckpt and are not requeued; `grid submit` later resumes them");
        var file = FileArg(); var output = OutputOpt();
        c.Add(file); c.Add(output);
        c.SetAction(r =>
        {
            var (spec, _) = Load(r.GetValue(file)!, r.GetValue(output));
            if (!File.Exists(SlurmArray.JobsFile(spec))) { Console.WriteLine("no Slurm job was submitted for this grid"); return 0; }
            var jobs = File.ReadAllLines(SlurmArray.JobsFile(spec)).Select(l => l.Split(' ')[0]).Where(j => j.Length > 0).ToList();
            AtomicFile.WriteAllText(SlurmArray.CancelledMarker(spec), DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture) + "\n");
            var scancel = Which("scancel") ?? throw new ArgumentException("scancel not found on PATH");
            var (rc, text) = Capture(scancel, jobs);
            Console.WriteLine(rc == 0 ? $"cancelled {string.Join(", ", jobs)} (running tasks save last.ckpt first)" : $"scancel: {text.Trim()}");
            return rc == 0 ? 0 : 1;
        });
        return c;
    }

    /// <summary>How to start this program again: the given command, else `dotnet SemiSeg.Cli.dll` or the apphost.</summary>
    internal static (string Exe, List<string> Prefix) SelfCommand(string? given)
    {
        if (!string.IsNullOrWhiteSpace(given))
        {
            var words = given.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return (words[0], words.Skip(1).ToList());
        }
        var proc = Environment.ProcessPath ?? "dotnet";
        return Path.GetFileNameWithoutExtension(proc) == "dotnet"
            ? (proc, new List<string> { typeof(GridCommand).Assembly.Location })
            : (proc, new List<string>());
    }

    static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    static (int Rc, string Text) Capture(string exe, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, text + err.Result);
    }

    const int SigTerm = 15;
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Kill(int pid, int sig);
}
