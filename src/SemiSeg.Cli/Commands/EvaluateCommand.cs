using SemiSeg.Inference;
using System.CommandLine;
using System.Globalization;
using SemiSeg.Data;
using SemiSeg.Evaluation;
using SemiSeg.Training;
using SemiSeg.Runtime;
using Spectre.Console;

namespace SemiSeg.Cli.Commands;

internal static class EvaluateCommand
{
    public static Command Create()
    {
        var cmd = new Command("evaluate", "Score a checkpoint (or a folder of predicted masks) on the labeled validation or test volumes: Dice, Jaccard, HD95, ASD per class and per case (CSV + JSON).");
        var data = new DataOptions();
        data.AddTo(cmd);
        var ckpt = new Option<string?>("--checkpoint", "-c") { Description = "Checkpoint (best.ckpt or last.ckpt of a run), or a PyTorch state dict (.pt/.pth/.safetensors) of the SSL4MIS UNet or UA-MT VNet under the reference's parameter names" };
        var inputSize = MetricOptions.InputSize();
        var predictions = new Option<string?>("--predictions") { Description = "Instead of a checkpoint: a folder of predicted masks named CASE_pred.nii.gz / CASE.nii.gz / .nii / .h5 / .png / .mha. A mask stored in another axis order or direction than its reference (NIfTI/MetaImage affines that differ by flips or permutations of the axes) is reoriented onto the reference's grid; one on another grid is refused. Cases whose mask is missing or unusable are listed (stderr and metrics.json \"failed\"), the others scored, and the exit code is 1" };
        var split = new Option<Split>("--split") { Description = "Which volumes: test or val", DefaultValueFactory = _ => Split.Test };
        var output = new Option<string?>("--output", "-o") { Description = "Folder for metrics.csv / metrics.json (default: beside the checkpoint, eval-<split>/)" };
        var savePred = new Option<bool>("--save-predictions") { Description = "Also write each predicted mask as NIfTI into the output folder" };
        var threads = new Option<int?>("--threads") { Description = "Torch threads (default: core count)" };
        var mode = MetricOptions.Mode(); var policy = MetricOptions.Policy(); var spacing = MetricOptions.Spacing();
        var stride = MetricOptions.Stride();
        var lcc = new Option<bool>("--largest-component") { Description = "Post-process the checkpoint's predictions: each class keeps its largest connected component per volume (the LA protocol's nms=1; off in SSL4MIS's ACDC protocol)" };
        var overlays = new Option<bool>("--overlays") { Description = "Also write PNG pictures (image | ground truth | prediction, class legend) of the best, median and worst cases by mean Dice into OUTPUT/overlays/; a volume is shown by its slice with the most ground-truth foreground" };
        foreach (var o in new Option[] { ckpt, predictions, split, output, savePred, threads, mode, policy, spacing, lcc, stride, inputSize, overlays, MetricOptions.Device() }) cmd.Add(o);
        cmd.Validators.Add(r =>
        {
            if ((r.GetValue(ckpt) is null) == (r.GetValue(predictions) is null)) r.AddError("give exactly one of --checkpoint and --predictions");
        });
        cmd.SetAction(r =>
        {
            TorchRuntime.Configure(r.GetValue(threads));
            if (r.GetValue(ckpt) is string ck && CheckpointFile.ReadMeta(ck, out long _).Network3D is not null)
                return Evaluate3D(r, data, ck, r.GetValue(split), r.GetValue(output), r.GetValue(savePred), r.GetValue(mode), r.GetValue(policy),
                    MetricOptions.ParseSpacing(r.GetValue(spacing)), r.GetValue(lcc), MetricOptions.ParseTriple(r.GetValue(stride), "--stride"), r.GetValue(inputSize), r.GetValue(overlays));
            var manifest = data.Load(r);
            // ultrasound layouts: head circumference where a class is the head (HC18), the angle of progression where
            // the classes are the pubic symphysis and the fetal head (PSFH; its heads are cut by the field of view, so no HC)
            var aopClasses = AngleOfProgression.Classes(manifest.ClassNames);
            var aop = aopClasses is { } ac ? new AngleOfProgressionReport(ac.Ps, ac.Fh) : null;
            var headClass = aop is null ? HeadCircumferenceReport.HeadClass(manifest.ClassNames) : null;
            var hc = headClass is null ? null : new HeadCircumferenceReport();
            var pictures = r.GetValue(overlays) ? new OverlaySet(manifest.ClassNames) : null;
            void Measure(CaseRef c, Volume vol, byte[] pred)
            {
                hc?.Add(c, vol, pred, headClass!.Value);
                aop?.Add(c, vol, pred);
                pictures?.Add(c.Name, vol, vol.Label, pred);
            }
            int WriteReport(EvaluationReport report, string dir, string title)
            {
                report.SpacingSource = manifest.SpacingSource;
                if (hc != null) report.Measurements["head_circumference"] = hc.ToJson();
                if (aop != null) report.Measurements["angle_of_progression"] = aop.ToJson();
                report.Write(dir);
                PrintReport(report, title);
                if (manifest.SpacingSource is not null && report.Mode != MetricMode.Medpy) Console.WriteLine($"distances in mm: {manifest.SpacingSource}");
                Console.WriteLine($"wrote {Path.Combine(dir, "metrics.csv")} and metrics.json");
                if (hc != null)
                {
                    hc.Write(dir);
                    Console.WriteLine(hc.Summary());
                    Console.WriteLine($"wrote {Path.Combine(dir, "hc.csv")}");
                }
                if (aop != null)
                {
                    aop.Write(dir);
                    Console.WriteLine(aop.Summary());
                    Console.WriteLine($"wrote {Path.Combine(dir, "aop.csv")}");
                }
                return Finish(report, dir, pictures);
            }
            if (r.GetValue(predictions) is string predDir)
            {
                var s = r.GetValue(split);
                var list = manifest.CasesOf(s);
                if (list.Count == 0) throw new ArgumentException($"the dataset has no {s.ToString().ToLowerInvariant()} volumes");
                var rep = Evaluator.EvaluateMasks(predDir, list, manifest.NumClasses, manifest.ClassNames, r.GetValue(mode), r.GetValue(policy), MetricOptions.ParseSpacing(r.GetValue(spacing)), Measure);
                var dir = r.GetValue(output) ?? Path.Combine(predDir, $"eval-{s.ToString().ToLowerInvariant()}");
                return WriteReport(rep, dir, $"{list.Count - rep.Failures.Count} of {list.Count} {s.ToString().ToLowerInvariant()} volumes, predictions from {predDir}");
            }
            var (inferer, meta) = MetricOptions.LoadInferer(r.GetValue(ckpt)!, r.GetValue(inputSize), largestComponent: r.GetValue(lcc), device: r.GetValue<string>("--device"));
            using var _ = inferer;
            if (meta.Network.NumClasses != manifest.NumClasses)
                throw new ArgumentException($"checkpoint '{r.GetValue(ckpt)}' predicts {meta.Network.NumClasses} classes, the dataset has {manifest.NumClasses}");
            var sp = r.GetValue(split);
            var cases = manifest.CasesOf(sp);
            if (cases.Count == 0) throw new ArgumentException($"the dataset has no {sp.ToString().ToLowerInvariant()} volumes");
            var outDir = r.GetValue(output) ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(r.GetValue(ckpt)!))!, $"eval-{sp.ToString().ToLowerInvariant()}");
            bool save = r.GetValue(savePred);
            var report = Evaluator.Evaluate(inferer, cases, manifest.ClassNames, r.GetValue(mode), r.GetValue(policy), MetricOptions.ParseSpacing(r.GetValue(spacing)),
                onPrediction: (c, vol, pred) =>
                {
                    Measure(c, vol, pred);
                    if (!save) return;
                    var outVol = new Volume(c.Name, vol.Depth, vol.Height, vol.Width, vol.Image, pred) { Spacing = vol.Spacing, Affine = vol.Affine };
                    var path = Path.Combine(outDir, "predictions", c.Name + "_pred.nii.gz");
                    AtomicFile.EnsureNotInput(path, new[] { c.ImagePath, c.LabelPath! });
                    Nifti.Write(path, outVol, asLabel: true);
                });
            return WriteReport(report, outDir, $"{cases.Count} {sp.ToString().ToLowerInvariant()} volumes, checkpoint {r.GetValue(ckpt)} (iteration {meta.Iteration})");
        });
        return cmd;
    }

    /// <summary>A 3D checkpoint: sliding-window inference over the split's volumes (LA, ACDC or own data).</summary>
    static int Evaluate3D(ParseResult r, DataOptions data, string ck, Split sp, string? output, bool save, MetricMode mode, EmptyPolicy policy,
        double[]? spacing, bool lcc, int[]? stride, string? inputSize, bool overlays)
    {
        var (inferer, meta) = MetricOptions.LoadInferer(ck, inputSize, stride is { } s3 ? (s3[0], s3[1], s3[2]) : null, lcc, r.GetValue<string>("--device"));
        using var _ = inferer;
        var volumes = data.LoadVolumes(r, scoring: true);
        if (meta.Network.NumClasses != volumes.NumClasses)
            throw new ArgumentException($"checkpoint '{ck}' predicts {meta.Network.NumClasses} classes, the dataset has {volumes.NumClasses}");
        var cases = sp == Split.Val ? volumes.Val : sp == Split.Test ? volumes.Test : volumes.Labeled;
        if (cases.Count == 0) throw new ArgumentException($"the dataset has no {sp.ToString().ToLowerInvariant()} volumes");
        var outDir = output ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(ck))!, $"eval-{sp.ToString().ToLowerInvariant()}");
        var pictures = overlays ? new OverlaySet(volumes.ClassNames) : null;
        var report = Evaluator.Evaluate(inferer, cases, volumes.ClassNames, mode, policy, spacing, load: volumes.Reader,
            onPrediction: (c, vol, pred) =>
            {
                pictures?.Add(c.Name, vol, vol.Label, pred);
                if (!save) return;
                var path = Path.Combine(outDir, "predictions", c.Name + "_pred.nii.gz");
                AtomicFile.EnsureNotInput(path, new[] { c.ImagePath, c.LabelPath! });
                Nifti.Write(path, new Volume(c.Name, vol.Depth, vol.Height, vol.Width, vol.Image, pred) { Spacing = vol.Spacing, Affine = vol.Affine }, asLabel: true);
            });
        report.Write(outDir);
        PrintReport(report, $"{cases.Count} {sp.ToString().ToLowerInvariant()} volumes, 3D checkpoint {ck} (iteration {meta.Iteration}), {inferer.Describe()}");
        Console.WriteLine($"wrote {Path.Combine(outDir, "metrics.csv")} and metrics.json");
        return Finish(report, outDir, pictures);
    }

    /// <summary>After metrics.json: the overlay pictures, the warnings, and each case that could not be scored
    /// (standard error); exit code 1 when any case failed (the others are scored and written), else 0.</summary>
    static int Finish(EvaluationReport report, string dir, OverlaySet? pictures)
    {
        if (pictures is not null)
        {
            var files = pictures.WriteBestMedianWorst(dir, report);
            Console.WriteLine($"wrote {files.Count} overlay picture(s) to {Path.Combine(dir, "overlays")}");
        }
        var reoriented = report.Cases.Where(k => k.Geometry?.StartsWith("reoriented", StringComparison.Ordinal) == true).ToList();
        if (reoriented.Count > 0)
            Console.Error.WriteLine($"note: {reoriented.Count} prediction(s) stored in another axis order or direction than their reference, reoriented onto the reference's grid (exactly; metrics.json says how for each), e.g. {reoriented[0].Case}: {reoriented[0].Geometry}");
        foreach (var w in report.Warnings) Console.Error.WriteLine($"warning: {w}");
        foreach (var f in report.Failures) Console.Error.WriteLine($"failed: {f.Case}: {f.Reason}");
        if (report.Failures.Count == 0) return 0;
        Console.Error.WriteLine($"error: {report.Failures.Count} of {report.Failures.Count + report.Cases.Count} case(s) could not be scored (listed under \"failed\" in {Path.Combine(dir, "metrics.json")}); the means are over the {report.Cases.Count} scored");
        return 1;
    }

    public static void PrintReport(EvaluationReport report, string title)
    {
        static string P(double v) => double.IsNaN(v) ? "NaN" : (100 * v).ToString("0.00", CultureInfo.InvariantCulture);
        static string D(double v) => double.IsNaN(v) ? "NaN" : v.ToString("0.00", CultureInfo.InvariantCulture);
        var table = new Table().Title(Markup.Escape(title)).AddColumns("class", "Dice %", "Jaccard %", $"HD95 ({report.Units})", $"ASD ({report.Units})", "undefined HD95/ASD");
        foreach (var s in report.Summary())
            table.AddRow(Markup.Escape(s.Class), P(s.Dice), P(s.Jaccard), D(s.Hd95), D(s.Asd), s.UndefinedDistance.ToString(CultureInfo.InvariantCulture));
        var m = report.Mean();
        table.AddRow("[bold]mean[/]", $"[bold]{P(m.Dice)}[/]", $"[bold]{P(m.Jaccard)}[/]", $"[bold]{D(m.Hd95)}[/]", $"[bold]{D(m.Asd)}[/]", m.UndefinedDistance.ToString(CultureInfo.InvariantCulture));
        table.Caption($"metrics: {report.Mode.ToString().ToLowerInvariant()}; empty-mask policy: {report.Policy.ToString().ToLowerInvariant()}");
        if (Cli.Interactive) AnsiConsole.Write(table);
        else Console.Write(report.ToTable());
    }
}
