using System.CommandLine;
using SemiSeg.Data;
using SemiSeg.Reporting;

namespace SemiSeg.Cli.Commands;

internal static class ReportCommand
{
    public static Command Create()
    {
        var cmd = new Command("report", "Compare training runs: one table per dataset of test Dice/Jaccard/HD95/ASD, per-class Dice, best validation Dice and speed, with each run's per-case Dice difference to a baseline and its Wilcoxon signed-rank p-value; runs of a grid (named ...-sSEED) also as mean ± sd over seeds with a paired test over cases and seeds.");
        var runs = new Argument<string[]>("runs") { Description = "Run folders, or folders of runs (e.g. runs/table-96-1000)", Arity = ArgumentArity.OneOrMore };
        var evaluation = new Option<string>("--eval") { Description = "The evaluation folder inside each run", DefaultValueFactory = _ => "eval-test" };
        var baseline = new Option<string>("--baseline") { Description = "Baseline: a run name, or a method (per dataset, its run with the shortest name)", DefaultValueFactory = _ => "supervised" };
        var output = new Option<string?>("--output", "-o") { Description = "Also write the table to FILE.md and one row per run to FILE.csv" };
        var html = new Option<string?>("--html") { Description = "Also write one self-contained HTML page (tables, per-case Dice box plots, every run's training curves, evaluation overlays) to FILE" };
        var curves = new Option<bool>("--curves") { Description = "Also (re)draw curves.png in every run folder" };
        cmd.Add(runs); cmd.Add(evaluation); cmd.Add(baseline); cmd.Add(output); cmd.Add(html); cmd.Add(curves);
        cmd.SetAction(r =>
        {
            var loaded = RunComparison.Load(r.GetValue(runs)!, r.GetValue(evaluation)!);
            var rows = RunComparison.Compare(loaded, r.GetValue(baseline)!);
            // runs named METHOD[-L]-sSEED (a `semiseg grid`) are also summarised over seeds
            var md = RunComparison.ToMarkdown(rows) + SeedAggregate.ToMarkdown(SeedAggregate.Aggregate(loaded, r.GetValue(baseline)!));
            Console.Write(md);
            if (r.GetValue(output) is string o)
            {
                var stem = o.EndsWith(".md", StringComparison.OrdinalIgnoreCase) ? o[..^3] : o;
                AtomicFile.WriteAllText(stem + ".md", md);
                AtomicFile.WriteAllText(stem + ".csv", RunComparison.ToCsv(rows));
                Console.WriteLine($"wrote {stem}.md and {stem}.csv");
            }
            if (r.GetValue(html) is string h)
            {
                AtomicFile.WriteAllText(h, HtmlReport.Build(loaded, r.GetValue(baseline)!));
                Console.WriteLine($"wrote {h}");
            }
            if (r.GetValue(curves))
                foreach (var run in loaded)
                    if (Charts.WriteCurvesPng(run.Folder)) Console.WriteLine($"wrote {Path.Combine(run.Folder, "curves.png")}");
            return 0;
        });
        return cmd;
    }
}
