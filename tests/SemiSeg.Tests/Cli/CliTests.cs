using SemiSeg.Geometry;
using SemiSeg.Cli;
using SemiSeg.Data;

namespace SemiSeg.Tests.Cli;

/// <summary>The real CLI, invoked in-process: bad input ends with exit code 2 and one message naming the file and
/// the problem; the happy path trains, evaluates and predicts without touching its inputs.</summary>
public class CliTests
{
    internal static (int code, string stdout, string stderr) Run(params string[] args)
    {
        var o = Console.Out; var e = Console.Error;
        var so = new StringWriter(); var se = new StringWriter();
        Console.SetOut(so); Console.SetError(se);
        try { return (SemiSeg.Cli.Cli.Run(args), so.ToString(), se.ToString()); }
        finally { Console.SetOut(o); Console.SetError(e); }
    }

    [Fact]
    public void MissingAndCorruptInputsGiveOneClearError()
    {
        using var t = new TempDir();
        var (c1, _, e1) = Run("predict", "--checkpoint", t["none.ckpt"], "--input", t.Path, "--output", t["out"]);
        Assert.Equal(2, c1);
        Assert.Contains("none.ckpt", e1);
        Assert.Contains("does not exist", e1);

        Directory.CreateDirectory(t["data/imagesTr"]); Directory.CreateDirectory(t["data/labelsTr"]);
        File.WriteAllBytes(t["data/imagesTr/broken.h5"], new byte[300]);
        File.WriteAllBytes(t["data/labelsTr/broken.h5"], new byte[300]);
        var (c2, _, e2) = Run("train", "--data", t["data"], "--output", t["run"], "--iterations", "2", "--patch-size", "32");
        Assert.Equal(2, c2);
        Assert.Contains("broken.h5", e2);
        Assert.Single(e2.Trim().Split('\n'));
    }

    [Fact]
    public void ShapeMismatchAndOutOfRangeLabelsAreReportedWithTheFile()
    {
        using var t = new TempDir();
        Directory.CreateDirectory(t["d/imagesTr"]); Directory.CreateDirectory(t["d/labelsTr"]);
        Nifti.Write(t["d/imagesTr/a.nii.gz"], new Volume("a", 2, 32, 32, new float[2048]), false);
        Nifti.Write(t["d/labelsTr/a.nii.gz"], new Volume("a", 2, 32, 30, new float[1920], new byte[1920]), true);
        var (c, _, e) = Run("train", "--data", t["d"], "--output", t["run"], "--iterations", "2", "--patch-size", "32", "--batch-size", "2", "--labeled-bs", "2");
        Assert.Equal(2, c);
        Assert.Contains("labelsTr/a.nii.gz", e);
        Assert.Contains("shape", e);

        var lab = new byte[2048]; lab[5] = 7;
        Nifti.Write(t["d/labelsTr/a.nii.gz"], new Volume("a", 2, 32, 32, new float[2048], lab), true);
        var (c2, _, e2) = Run("train", "--data", t["d"], "--output", t["run2"], "--iterations", "2", "--patch-size", "32", "--batch-size", "2", "--labeled-bs", "2");
        Assert.Equal(2, c2);
        Assert.Contains("a.nii.gz", e2);
        Assert.Contains("out of range", e2);
    }

    [Fact]
    public void UltrasoundPhantomTrainsWithErsrAndEvaluateReportsHeadCircumference()
    {
        using var t = new TempDir();
        var (c0, o0, _) = Run("phantom", "hc18", "-o", t["hc"], "--count", "20", "--unannotated", "2");
        Assert.Equal(0, c0);
        Assert.Contains("HC18", o0);
        var (c1, _, e1) = Run("train", "--data", t["hc"], "--labeled", "3", "--method", "ersr", "--output", t["run"], "--iterations", "3",
            "--patch-size", "32", "--batch-size", "4", "--labeled-bs", "2", "--val-every", "3", "-q");
        Assert.True(c1 == 0, e1);
        var (c2, o2, e2) = Run("evaluate", "--data", t["hc"], "--checkpoint", t["run/best.ckpt"], "--mode", "spacing");
        Assert.True(c2 == 0, e2);
        Assert.Contains("head circumference", o2);
        Assert.True(File.Exists(t["run/eval-test/hc.csv"]));
        Assert.StartsWith("case,pixel_size_mm,hc_reference_mm", File.ReadAllText(t["run/eval-test/hc.csv"]));
        using (var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(t["run/eval-test/metrics.json"])))
        {
            Assert.Contains("training_set_pixel_size_and_HC.csv", json.RootElement.GetProperty("spacing").GetString());
            var hc = json.RootElement.GetProperty("measurements").GetProperty("head_circumference");
            Assert.Equal("mm", hc.GetProperty("units").GetString());
            Assert.Equal(json.RootElement.GetProperty("cases").GetInt32(), hc.GetProperty("per_case").GetArrayLength());
            // the report's table carries the HC error beside Dice
            var (cr, or, er) = Run("report", t["run"]);
            Assert.True(cr == 0, er);
            Assert.Contains("| HC error (mm) |", or);
            var error = hc.GetProperty("mean_abs_difference").GetDouble().ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
            Assert.Contains($" {error} |", or.Split('\n').Single(l => l.StartsWith("| run | ersr |")));
        }
        var (c3, _, e3) = Run("phantom", "hc18", "-o", t["hc"], "--count", "20");
        Assert.Equal(2, c3);
        Assert.Contains("not empty", e3);
    }

    [SkippableFact]
    public void EvaluateReportsTheAngleOfProgressionOnRealPsfhs()
    {
        var root = SharedData.PsfhRoot();
        Skip.If(root == null, SharedData.PsfhMissingMessage);
        using var t = new TempDir();
        // predictions as the challenge submits them (.mha): the reference labels, one with its head moved 6 px down
        var test = PsfhDataset.Load(root!).Test;
        Directory.CreateDirectory(t["pred"]);
        foreach (var c in test) File.Copy(c.LabelPath!, t[$"pred/{c.Name}.mha"]);
        var (lab, _, h, w) = VolumeIO.ReadLabel(test[0].LabelPath!);
        var moved = new byte[lab.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (lab[y * w + x] == 1) moved[y * w + x] = 1;
                else if (lab[y * w + x] == 2 && y + 6 < h && moved[(y + 6) * w + x] == 0) moved[(y + 6) * w + x] = 2;
        MetaImage.Write(t[$"pred/{test[0].Name}.mha"], 1, h, w, bytes: moved);
        var (code, o, e) = Run("evaluate", "--data", root!, "--predictions", t["pred"], "--output", t["eval"], "--mode", "spacing");
        Assert.True(code == 0, e);
        Assert.Contains("angle of progression: mean |ΔAoP|", o);
        Assert.Contains("distances in mm: each image's MetaImage header ElementSpacing", o);
        Assert.DoesNotContain("head circumference", o);
        var rows = File.ReadAllLines(t["eval/aop.csv"]);
        Assert.Equal(test.Count + 1, rows.Length);
        var first = rows.Single(r => r.StartsWith(test[0].Name + ",")).Split(',');
        Assert.True(double.Parse(first[3], System.Globalization.CultureInfo.InvariantCulture) > 0.5, rows[1]);
        Assert.All(rows.Skip(1).Where(r => !r.StartsWith(test[0].Name + ",")), r => Assert.EndsWith(",0", r));
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(t["eval/metrics.json"]));
        var aop = json.RootElement.GetProperty("measurements").GetProperty("angle_of_progression");
        Assert.Equal(test.Count, aop.GetProperty("cases").GetInt32());
        Assert.True(aop.GetProperty("mean_abs_difference").GetDouble() > 0);
    }

    [Fact]
    public void PretrainFeedsTheEncoderOfALaterTraining()
    {
        using var t = new TempDir();
        Assert.Equal(0, Run("phantom", "cardiac", "-o", t["d"]).code);
        var (c1, o1, e1) = Run("pretrain", "--data", t["d"], "--output", t["pre"], "--iterations", "2", "--patch-size", "32", "--param", "scans_per_batch=2", "-q");
        Assert.True(c1 == 0, e1);
        Assert.Contains("--init-encoder", o1);
        // own data has no cardiac phase: the cycle kind would make every pair positive, so it is switched off by name;
        // the batches are scans x partitions over all training slices
        var log = File.ReadAllText(t["pre/train.log"]);
        Assert.Contains("meta-label kind 'cycle' takes a single value", log);
        Assert.Contains("batch: 2 of ", log);
        Assert.Contains("x one slice per partition (3)", log);
        var (c2, _, e2) = Run("train", "--data", t["d"], "--method", "mean-teacher", "--init-encoder", t["pre/best.ckpt"], "--output", t["ft"],
            "--iterations", "2", "--patch-size", "32", "--batch-size", "4", "--labeled-bs", "2", "-q");
        Assert.True(c2 == 0, e2);
        Assert.Contains("init_encoder", File.ReadAllText(t["ft/config.json"]));
        var (c3, _, e3) = Run("train", "--data", t["d"], "--init-encoder", t["missing.ckpt"], "--output", t["ft2"], "--iterations", "2", "--patch-size", "32", "--batch-size", "4", "--labeled-bs", "2", "-q");
        Assert.Equal(2, c3);
        Assert.Contains("missing.ckpt", e3);
    }

    [Fact]
    public void TrainEvaluatePredictEndToEndOnThePhantom()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 1, val: 1, test: 2, depth: 3, size: 32);
        var before = Directory.GetFiles(t["data"], "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);
        var (c1, o1, e1) = Run("train", "--data", t["data"], "--output", t["run"], "--iterations", "6", "--patch-size", "32",
            "--batch-size", "4", "--labeled-bs", "4", "--val-every", "3", "--quiet");
        Assert.True(c1 == 0, e1);
        Assert.Contains("best mean foreground Dice", o1);
        var (c2, o2, e2) = Run("evaluate", "--data", t["data"], "--checkpoint", t["run/best.ckpt"], "--output", t["eval"], "--mode", "spacing", "--save-predictions");
        Assert.True(c2 == 0, e2);
        Assert.Contains("mean", o2);
        Assert.True(File.Exists(t["eval/metrics.csv"]) && File.Exists(t["eval/metrics.json"]));
        Assert.Equal(2 * 3 + 1, File.ReadAllLines(t["eval/metrics.csv"]).Length); // 2 cases x 3 classes + header
        // the saved masks, scored as files, give the same numbers as the checkpoint
        var (c2b, _, e2b) = Run("evaluate", "--data", t["data"], "--predictions", t["eval/predictions"], "--output", t["eval2"], "--mode", "spacing");
        Assert.True(c2b == 0, e2b);
        Assert.Equal(File.ReadAllText(t["eval/metrics.csv"]), File.ReadAllText(t["eval2/metrics.csv"]));
        var (c2c, _, e2c) = Run("evaluate", "--data", t["data"], "--predictions", t["run"]);
        Assert.Equal(1, c2c); // every case listed as failed, none scored
        Assert.Contains("no prediction for case", e2c);
        Assert.Contains("error: 2 of 2 case(s) could not be scored", e2c);
        var (c2d, _, _) = Run("evaluate", "--data", t["data"]);
        Assert.NotEqual(0, c2d); // neither --checkpoint nor --predictions
        var (c3, _, e3) = Run("predict", "--checkpoint", t["run/best.ckpt"], "--input", t["data/imagesTs"], "--output", t["pred"], "--overlays");
        Assert.True(c3 == 0, e3);
        var preds = Directory.GetFiles(t["pred"]);
        Assert.Equal(2, preds.Length);
        // --overlays: one picture per input (image | prediction) of its slice with the most predicted foreground
        foreach (var mask in preds)
        {
            var stem = Path.GetFileName(mask)[..^"_pred.nii.gz".Length];
            var img = StbImageSharp.ImageResult.FromMemory(File.ReadAllBytes(t[$"pred/overlays/{stem}.png"]), StbImageSharp.ColorComponents.RedGreenBlue);
            Assert.Equal((8 + 2 * (32 * 8 + 8), 28 + 20 + 32 * 8 + 26 + 8), (img.Width, img.Height));
            var lab = Nifti.ReadLabel(mask, out _);
            int z = SemiSeg.Evaluation.OverlayPanel.ShowSlice(null, lab, 3, 32 * 32);
            EvaluateOverlaysCliTests.AssertPanelShows(img, 1, lab.AsSpan(z * 1024, 1024).ToArray(), 32, 32);
            EvaluateOverlaysCliTests.AssertPanelShows(img, 0, new byte[1024], 32, 32); // the plain image: grey
        }
        var p = Nifti.ReadLabel(preds[0], out var hdr);
        Assert.Equal((3, 32, 32), (hdr.Nz, hdr.Ny, hdr.Nx));
        Assert.Equal(10f, hdr.PixDim[3]); // spacing kept from the input
        // --largest-component: the plain prediction with each class cut to its largest 26-connected component
        var (c3b, _, e3b) = Run("predict", "--checkpoint", t["run/best.ckpt"], "--input", t["data/imagesTs"], "--output", t["pred-lcc"], "--largest-component");
        Assert.True(c3b == 0, e3b);
        var plain = Nifti.ReadLabel(preds[0], out _);
        var cut = Nifti.ReadLabel(Path.Combine(t["pred-lcc"], Path.GetFileName(preds[0])), out _);
        Assert.Equal(ConnectedComponents.LargestComponent(plain, 3, 32, 32, 4, perSlice: false), cut);
        var (c4, _, _) = Run("predict", "--checkpoint", t["run/best.ckpt"], "--input", t["data/imagesTs"], "--output", t["png"], "--format", "png");
        Assert.Equal(0, c4);
        Assert.Equal(6, Directory.GetFiles(t["png"], "*.png").Length);
        // nothing that was read was changed
        foreach (var (f, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(f));
    }

    [Fact]
    public void ReportComparesEvaluatedRunsWithTheSupervisedBaselineOnTheSameData()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 2, val: 1, test: 3, depth: 3, size: 32);
        string[] common = { "--data", t["data"], "--iterations", "4", "--patch-size", "32", "--batch-size", "4", "--labeled-bs", "2", "--val-every", "2", "--quiet" };
        foreach (var m in new[] { "supervised", "mean-teacher", "cps" })
        {
            var (c, _, e) = Run(new[] { "train", "--method", m, "--output", t[$"runs/{m}-2"] }.Concat(common).ToArray());
            Assert.True(c == 0, e);
            if (m == "cps") continue; // trained, not evaluated
            var (ce, _, ee) = Run("evaluate", "--data", t["data"], "--checkpoint", t[$"runs/{m}-2/best.ckpt"]);
            Assert.True(ce == 0, ee);
        }
        var (cr, or, er) = Run("report", t["runs"], "-o", t["table.md"]);
        Assert.True(cr == 0, er);
        Assert.Contains("labeled slices (2 patients/cases)", or.Split('\n').Single(l => l.StartsWith("### ")));
        Assert.Contains("| supervised-2 | supervised |", or);
        Assert.Contains("(baseline)", or);
        Assert.Contains("| cps-2 | cps |", or);
        Assert.Contains("not evaluated", or);
        Assert.Equal(File.ReadAllText(t["table.md"]), or[..or.IndexOf("wrote ", StringComparison.Ordinal)]);
        // the CSV's difference is the mean per-case difference of the two metrics.json files
        var csv = new List<string[]>();
        using (var parser = new Microsoft.VisualBasic.FileIO.TextFieldParser(t["table.csv"]) { Delimiters = new[] { "," }, HasFieldsEnclosedInQuotes = true })
            while (!parser.EndOfData) csv.Add(parser.ReadFields()!);
        Assert.Equal(4, csv.Count);
        var head = csv[0];
        Assert.All(csv, row => Assert.Equal(head.Length, row.Length));
        var mt = csv.Single(l => l[0] == "mean-teacher-2");
        Assert.Equal("supervised-2", mt[Array.IndexOf(head, "baseline")]);
        Assert.Equal("3", mt[Array.IndexOf(head, "paired_cases")]);
        double CaseMean(string run, int i)
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(t[$"runs/{run}/eval-test/metrics.json"]));
            var v = doc.RootElement.GetProperty("per_case")[i].GetProperty("classes").EnumerateArray()
                .Where(k => k.GetProperty("dice").ValueKind == System.Text.Json.JsonValueKind.Number).Select(k => k.GetProperty("dice").GetDouble()).ToArray();
            return v.Average();
        }
        double expected = Enumerable.Range(0, 3).Average(i => CaseMean("mean-teacher-2", i) - CaseMean("supervised-2", i));
        Assert.Equal(expected, double.Parse(mt[Array.IndexOf(head, "delta_dice")], System.Globalization.CultureInfo.InvariantCulture), 5);
        // the facts come from run.json; a run from before run.json is read from its train.log, to the same table
        var sup = SemiSeg.Training.RunSummary.TryRead(t["runs/supervised-2"])!;
        Assert.Equal(("supervised", 4L, true), (sup.Method, sup.Iterations, sup.Finished));
        Assert.True(sup.SecondsPerIteration > 0);
        File.Delete(t["runs/supervised-2/train.log"]);
        File.Delete(t["runs/mean-teacher-2/run.json"]);
        var (c2, o2, e2) = Run("report", t["runs"], "-o", t["table2.md"]);
        Assert.True(c2 == 0, e2);
        Assert.Equal(or[..or.IndexOf("wrote ", StringComparison.Ordinal)], o2[..o2.IndexOf("wrote ", StringComparison.Ordinal)]);
        var (cm, _, em) = Run("report", t["nowhere"]);
        Assert.Equal(2, cm);
        Assert.Contains("nowhere", em);
    }

    [Fact]
    public void ConfigFileCommandLineOverridesAndTheSavedConfigRoundTrips()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 2, val: 1, test: 0, depth: 2, size: 32);
        File.WriteAllText(t["run.yaml"], "method: mean-teacher\nmax_iterations: 3\npatch_height: 32\npatch_width: 32\nbatch_size: 4\nlabeled_batch_size: 2\n" +
                                         "schedule: constant\nnetwork:\n  up: transpose\nmethod_params:\n  consistency: 0.5\n  consistency_start: 0\n");
        var (c, _, e) = Run("train", "--data", t["data"], "--output", t["run"], "--config", t["run.yaml"], "--iterations", "4", "--quiet");
        Assert.True(c == 0, e);
        var saved = SemiSeg.Training.TrainOptions.FromFile(t["run/config.json"]);
        Assert.Equal("mean-teacher", saved.Method);
        Assert.Equal(4, saved.MaxIterations);                 // the command line wins
        Assert.Equal(SemiSeg.Training.LrSchedule.Constant, saved.Schedule);
        Assert.Equal(SemiSeg.Models.UpMode.Transpose, saved.Network.Up);
        Assert.Equal("0.5", saved.MethodParams["consistency"]);
        Assert.Equal("0.99", saved.MethodParams["ema_decay"]);  // defaults are written out too
        // the saved configuration re-runs as is
        var (c2, _, e2) = Run("train", "--data", t["data"], "--output", t["run2"], "--config", t["run/config.json"], "--quiet");
        Assert.True(c2 == 0, e2);

        File.WriteAllText(t["typo.yaml"], "max_iteration: 3\n");
        var (c3, _, e3) = Run("train", "--data", t["data"], "--output", t["run3"], "--config", t["typo.yaml"]);
        Assert.Equal(2, c3);
        Assert.Contains("typo.yaml", e3);
        var (c4, _, e4) = Run("train", "--data", t["data"], "--output", t["run4"], "--method", "mean-teacher", "--param", "consistancy=1", "--iterations", "1", "--patch-size", "32");
        Assert.Equal(2, c4);
        Assert.Contains("consistancy", e4);
    }

    [Fact]
    public void BenchTimesSeveralMethodsInOneProcess()
    {
        using var t = new TempDir();
        var (c, o, e) = Run("bench", "--method", "mean-teacher,supervised@resunet", "--size", "32", "--batch", "4", "--iters", "2", "--warmup", "0", "--json", t["bench.json"]);
        Assert.True(c == 0, e);
        var lines = o.Split('\n').Where(l => l.StartsWith("semiseg 2D ")).ToArray();
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("semiseg 2D mean-teacher ", lines[0]);
        Assert.StartsWith("semiseg 2D supervised@resunet ", lines[1]);
        Assert.Contains("ResUNet2D", lines[1]);
        // --json (it was ignored with --method until 2026-12-02): one entry per method, its figures and every timed iteration
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(t["bench.json"]));
        var entries = doc.RootElement.EnumerateArray().ToArray();
        Assert.Equal(new[] { "mean-teacher", "supervised" }, entries.Select(x => x.GetProperty("method").GetString()));
        Assert.Equal(new[] { "unet", "resunet" }, entries.Select(x => x.GetProperty("network").GetString()));
        Assert.All(entries, x => Assert.Equal(2, x.GetProperty("iterationSeconds").GetArrayLength()));
        if (!SemiSeg.Models.NarrowOutputs.Pad) Assert.Equal(3.5, entries[0].GetProperty("passes").GetProperty("UNet2D").GetDouble(), 12);
        // the printed median is the JSON's, to the printed 3 decimals
        var printed = double.Parse(lines[0].Split("median ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(Math.Abs(printed - entries[0].GetProperty("medianSeconds").GetDouble()), 0, 0.0005 + 1e-9);
        var (c2, _, e2) = Run("bench", "--method", "supervised@vgg", "--size", "32", "--batch", "4");
        Assert.Equal(2, c2);
        Assert.StartsWith("error: ", e2);
        Assert.Contains("supervised@vgg", e2);
    }

    [Fact]
    public void BenchTimesThe3DSlidingWindow()
    {
        // a volume smaller than the LA patch is padded up to it: exactly one window
        var (c, o, e) = Run("bench", "--sliding-window", "40,60,60", "--iters", "1");
        Assert.True(c == 0, e);
        Assert.Contains("1 windows", o);
        Assert.Contains("volumes/s", o);
        var (c2, _, e2) = Run("bench", "--sliding-window", "40,60");
        Assert.Equal(2, c2);
        Assert.Contains("expected D,H,W", e2);
    }

    [Fact]
    public void TrainsEvaluatesAndPredictsA3DNetworkOnTheLaLayout()
    {
        using var t = new TempDir();
        var (c0, o0, e0) = Run("phantom", "la", "-o", t["la"], "--count", "3");
        Assert.True(c0 == 0, e0);
        Assert.Contains("3 training + 6 test", o0);
        var (c1, o1, e1) = Run("train", "--network", "vnet", "--data", t["la"], "--labeled", "2", "--method", "bcp", "--output", t["run"],
            "--iterations", "2", "--patch-size", "32", "--patch-depth", "16", "--batch-size", "4", "--labeled-bs", "2", "--param", "pretrain_iterations=1",
            "--schedule", "step", "--quiet");
        Assert.True(c1 == 0, e1);
        Assert.Contains("best.ckpt holds the last weights", o1);
        var (c2, o2, e2) = Run("evaluate", "--data", t["la"], "--checkpoint", t["run/best.ckpt"], "--largest-component", "--stride", "16,32,32", "--save-predictions", "--overlays");
        Assert.True(c2 == 0, e2);
        Assert.Contains("left atrium", o2);
        Assert.Equal(6, Directory.GetFiles(t["run/eval-test/predictions"]).Length);
        // --overlays on volumes: best (and median, worst where they are other cases) as three-panel PNGs
        var overlays = Directory.GetFiles(t["run/eval-test/overlays"]);
        Assert.InRange(overlays.Length, 1, 3);
        Assert.Contains(overlays, f => Path.GetFileName(f).StartsWith("best_", StringComparison.Ordinal));
        foreach (var f in overlays)
        {
            var img = StbImageSharp.ImageResult.FromMemory(File.ReadAllBytes(f), StbImageSharp.ColorComponents.RedGreenBlue);
            Assert.Equal(0, (img.Width - 8) % 3);                  // three equal panels with their padding
            Assert.True(img.Height > 28 + 20 + 26 + 8 + 200, $"{f}: {img.Width}x{img.Height}"); // panels drawn at >= 256 px wide
        }
        var (c3, o3, e3) = Run("predict", "--checkpoint", t["run/best.ckpt"], "--input", t["run/eval-test/predictions"], "--output", t["pred"]);
        Assert.True(c3 == 0, e3);
        Assert.Contains("wrote 6 mask file(s)", o3);
        // a method without a 3D version and a patch depth the VNet cannot take are refused by name
        var (c4, _, e4) = Run("train", "--network", "vnet", "--data", t["la"], "--labeled", "2", "--method", "m3hl", "--output", t["r4"], "--iterations", "1");
        Assert.Equal(2, c4);
        Assert.Contains("no 3D version", e4);
        var (c5, _, e5) = Run("train", "--network", "vnet", "--data", t["la"], "--labeled", "2", "--output", t["r5"], "--iterations", "1", "--patch-depth", "20");
        Assert.Equal(2, c5);
        Assert.Contains("multiple of 16", e5);
    }

    [Fact]
    public void HelpListsTheCommands()
    {
        var (c, o, _) = Run("--help");
        Assert.Equal(0, c);
        foreach (var cmd in new[] { "train", "evaluate", "predict", "demo", "bench", "methods" }) Assert.Contains(cmd, o);
    }
}
