using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using SemiSeg.Reporting;
using SemiSeg.Tests.Cli;

namespace SemiSeg.Tests.Reporting;

public class RunHistoryTests
{
    [Fact]
    public void ReadsEveryLoggedTermAndKeepsTheResumedValues()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir["train.log"], new[]
        {
            "[2026-12-01 10:00:00] method cps; data",
            "[2026-12-01 10:00:01] it 1 loss 2.2262 sup1 1.1798 sup2 1.0445 cps 2.8954 lr 0.01 0.42 it/s data-wait 2.3%",
            "[2026-12-01 10:00:02] it 50 loss 0.6304 sup1 0.3034 sup2 0.3268 cps 0.3687 lr 0.009558 1.32 it/s data-wait 0.0%",
            "[2026-12-01 10:00:03] it 100 loss 0.5 sup1 0.2 sup2 0.2 cps 0.1 lr 0.009 1.32 it/s data-wait 0.0%",
            "[2026-12-01 10:00:04] interrupted at iteration 101; saving last.ckpt",
            "[2026-12-01 10:01:00] resumed from /r/last.ckpt at iteration 60 (best mean Dice 0.5 at 50)",
            "[2026-12-01 10:01:01] it 100 loss 0.45 sup1 0.2 sup2 0.2 cps 0.05 lr 0.009 1.32 it/s data-wait 0.0%",
        });
        File.WriteAllLines(dir["validation.csv"], new[] { "iteration,mean_dice,mean_hd95", "50,0.5,3.2", "100,0.61,NaN", "100,0.62,2.0" });
        var h = RunHistory.Load(dir.Path);
        Assert.Equal(new[] { "loss", "sup1", "sup2", "cps", "lr" }, h.Training.Keys);
        Assert.Equal(new (long, double)[] { (1, 2.2262), (50, 0.6304), (100, 0.45) }, h.Training["loss"]);
        Assert.Equal(new (long, double)[] { (1, 0.01), (50, 0.009558), (100, 0.009) }, h.Training["lr"]);
        Assert.Equal(new (long, double)[] { (50, 0.5), (100, 0.62) }, h.Validation["mean_dice"]);
        Assert.True(double.IsNaN(RunHistory.Load(dir.Path).Validation["mean_hd95"][0].Value) == false);
    }

    [Theory]
    [InlineData(new[] { 1.0, 2, 3, 4 }, 0.25, 1.75)]   // numpy.quantile([1,2,3,4], 0.25) = 1.75
    [InlineData(new[] { 1.0, 2, 3, 4 }, 0.5, 2.5)]
    [InlineData(new[] { 5.0 }, 0.75, 5.0)]
    public void QuantilesInterpolateLikeNumpy(double[] sorted, double q, double expected) => Assert.Equal(expected, Charts.Quantile(sorted, q), 12);
}

/// <summary>`semiseg report --html` on real runs (two short phantom trainings, each evaluated), rendered by Debian's
/// headless Chromium: the page's own script reports what the browser drew, and a screenshot must not be blank.</summary>
public class HtmlReportTests
{
    static string? Chromium() => new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome" }.FirstOrDefault(File.Exists);

    static (int Code, string Out) RunChromium(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars" }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var text = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException("chromium did not finish in 120 s"); }
        return (p.ExitCode, text + err.Result);
    }

    [SkippableFact]
    public void TheReportRendersTablesBoxPlotsAndCurvesInChromium()
    {
        var chromium = Chromium();
        Skip.If(chromium is null, "Chromium not installed (Debian: apt-get install chromium): the HTML report's rendering check is skipped");
        using var t = new TempDir();
        Assert.Equal(0, CliTests.Run("phantom", "cardiac", "-o", t["data"]).code);
        foreach (var m in new[] { "supervised", "mean-teacher" })
        {
            var (c, _, e) = CliTests.Run("train", "--data", t["data"], "--labeled", "2", "--method", m, "--output", t[Path.Combine("runs", m)], "--iterations", "20",
                "--patch-size", "32", "--batch-size", "4", "--labeled-bs", "2", "--val-every", "10", "--log-every", "5", "--threads", "1", "--workers", "1", "-q");
            Assert.True(c == 0, e);
            (c, _, e) = CliTests.Run(new[] { "evaluate", "--data", t["data"], "--labeled", "2", "--checkpoint", t[Path.Combine("runs", m, "best.ckpt")], "--threads", "1" }
                .Concat(m == "supervised" ? new[] { "--overlays" } : Array.Empty<string>()).ToArray());
            Assert.True(c == 0, e);
        }
        var (code, stdout, stderr) = CliTests.Run("report", t["runs"], "--html", t["report.html"], "--curves");
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(t[Path.Combine("runs", "supervised", "curves.png")]), stdout);
        var html = File.ReadAllText(t["report.html"]);
        Assert.DoesNotContain("src=\"http", html);  // self-contained
        Assert.DoesNotContain("href=\"http", html);

        var (rc, dom) = RunChromium(chromium!, "--virtual-time-budget=10000", "--window-size=1400,2000", "--dump-dom", new Uri(t["report.html"]).AbsoluteUri);
        var m2 = Regex.Match(dom, "data-rendered=\"([^\"]*)\"");
        Assert.True(m2.Success, $"chromium (exit {rc}) did not run the page's check: {dom[..Math.Min(dom.Length, 2000)]}");
        using var rendered = JsonDocument.Parse(System.Net.WebUtility.HtmlDecode(m2.Groups[1].Value));
        int Get(string k) => rendered.RootElement.GetProperty(k).GetInt32();
        Assert.Equal(2, Get("curves"));               // one curve chart per run
        Assert.Equal(3, Get("charts"));               // + the Dice box plot, each drawn larger than 50x50 px
        Assert.Equal(2, Get("tableRows"));            // supervised (baseline) and mean-teacher
        Assert.Contains("<td>(baseline)</td>", dom);
        Assert.True(Get("width") <= 1400, "the page overflows the window horizontally");
        // the supervised run's evaluate --overlays pictures (best, median, worst) are on the page and decoded by the browser
        var overlays = Directory.GetFiles(t[Path.Combine("runs", "supervised", "eval-test", "overlays")], "*.png");
        Assert.InRange(overlays.Length, 1, 3);
        Assert.Equal(overlays.Length, Get("imagesTotal"));
        Assert.Equal(overlays.Length, Get("images"));
        Assert.Contains("alt=\"best_", html);

        var shot = t["shot.png"];
        RunChromium(chromium!, "--window-size=1400,1800", $"--screenshot={shot}", new Uri(t["report.html"]).AbsoluteUri);
        Assert.True(File.Exists(shot), "no screenshot");
        var img = StbImageSharp.ImageResult.FromMemory(File.ReadAllBytes(shot), StbImageSharp.ColorComponents.Grey);
        int dark = img.Data.Count(b => b < 128);
        Assert.True(dark > img.Data.Length / 200, $"the screenshot is nearly blank ({dark} dark pixels of {img.Data.Length})");
    }
}
