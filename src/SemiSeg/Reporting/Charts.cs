using SemiSeg.Data;
using ScottPlot;

namespace SemiSeg.Reporting;

/// <summary>The pictures of a report, drawn with ScottPlot: a run's training curves (every logged loss term on the
/// left axis, validation mean Dice on the right, as nnU-Net's progress.png) and box plots of per-case test Dice.</summary>
public static class Charts
{
    public const int Width = 820, Height = 420;

    /// <summary>The run's curves, or null when it logged nothing yet.</summary>
    public static Plot? Curves(RunHistory h, string title)
    {
        if (h.IsEmpty) return null;
        var plt = new Plot();
        plt.Title(title);
        plt.XLabel("iteration");
        plt.YLabel("training loss");
        var palette = new ScottPlot.Palettes.Category10();
        int k = 0;
        foreach (var (name, series) in h.Training.Where(s => s.Key != "lr" && s.Value.Count > 0))
        {
            var line = plt.Add.ScatterLine(series.Select(p => (double)p.It).ToArray(), series.Select(p => p.Value).ToArray(), palette.GetColor(k++));
            line.LegendText = name;
            line.LineWidth = name == "loss" ? 2 : 1;
            line.MarkerSize = 0;
        }
        if (h.Validation.TryGetValue("mean_dice", out var dice) && dice.Count > 0)
        {
            var ok = dice.Where(p => double.IsFinite(p.Value)).ToList();
            if (ok.Count > 0)
            {
                var v = plt.Add.ScatterLine(ok.Select(p => (double)p.It).ToArray(), ok.Select(p => 100 * p.Value).ToArray(), Colors.Black);
                v.LegendText = "validation mean Dice (%)";
                v.Axes.YAxis = plt.Axes.Right;
                v.LineWidth = 2; v.MarkerSize = 5;
                plt.Axes.Right.Label.Text = "validation mean Dice (%)";
                plt.Axes.SetLimitsY(0, 100, plt.Axes.Right);
            }
        }
        plt.ShowLegend(Alignment.UpperRight);
        return plt;
    }

    /// <summary>One box per group (median, quartiles, whiskers at the most extreme values within 1.5 IQR, Tukey's rule)
    /// with every case drawn as a point.</summary>
    public static Plot DiceBoxes(IReadOnlyList<(string Label, IReadOnlyList<double> Values)> groups, string title)
    {
        var plt = new Plot();
        plt.Title(title);
        plt.YLabel("per-case test Dice (%)");
        var palette = new ScottPlot.Palettes.Category10();
        var ticks = new List<Tick>();
        for (int i = 0; i < groups.Count; i++)
        {
            var v = groups[i].Values.Where(double.IsFinite).Select(x => 100 * x).OrderBy(x => x).ToArray();
            ticks.Add(new Tick(i, groups[i].Label));
            if (v.Length == 0) continue;
            var (q1, med, q3) = (Quantile(v, 0.25), Quantile(v, 0.5), Quantile(v, 0.75));
            double iqr = q3 - q1;
            var box = new Box
            {
                Position = i, BoxMin = q1, BoxMax = q3, BoxMiddle = med, Width = 0.6,
                WhiskerMin = v.Where(x => x >= q1 - 1.5 * iqr).Min(), WhiskerMax = v.Where(x => x <= q3 + 1.5 * iqr).Max(),
            };
            box.FillColor = palette.GetColor(i).WithAlpha(0.35);
            plt.Add.Box(box);
            var pts = plt.Add.Scatter(v.Select((_, j) => i + 0.25 * ((j % 7) / 6.0 - 0.5)).ToArray(), v, palette.GetColor(i));
            pts.LineWidth = 0; pts.MarkerSize = 4;
        }
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plt.Axes.Bottom.TickLabelStyle.Rotation = groups.Count > 6 ? 30 : 0;
        plt.Axes.Bottom.TickLabelStyle.Alignment = groups.Count > 6 ? Alignment.MiddleLeft : Alignment.UpperCenter;
        plt.Axes.SetLimitsX(-0.6, groups.Count - 0.4);
        plt.Axes.SetLimitsY(0, 100);
        return plt;
    }

    /// <summary>Linear-interpolation quantile of sorted values (numpy's default).</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q)
    {
        double pos = q * (sorted.Count - 1);
        int lo = (int)Math.Floor(pos), hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }

    public static string Svg(Plot plt, int width = Width, int height = Height) => plt.GetSvgXml(width, height);

    /// <summary>curves.png in the run folder (atomic), from its train.log and validation.csv; false when there is
    /// nothing to draw yet.</summary>
    public static bool WriteCurvesPng(string runFolder)
    {
        var plt = Curves(RunHistory.Load(runFolder), Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runFolder))));
        if (plt is null) return false;
        var bytes = plt.GetImageBytes(Width, Height, ImageFormat.Png);
        AtomicFile.Write(Path.Combine(runFolder, "curves.png"), s => s.Write(bytes));
        return true;
    }
}
