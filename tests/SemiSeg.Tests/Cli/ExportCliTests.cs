using SemiSeg.Data;
using SemiSeg.Interop;
using static SemiSeg.Tests.Cli.CliTests;

namespace SemiSeg.Tests.Cli;

/// <summary>`semiseg export`, and PyTorch state dicts where checkpoints are taken (evaluate, predict, train
/// --init-from): the same network scored from either file gives the same numbers.</summary>
public class ExportCliTests
{
    [Fact]
    public void ExportedUNetScoresPredictsAndInitialisesLikeItsCheckpoint()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 1, val: 1, test: 2, depth: 3, size: 32);
        var (c1, _, e1) = Run("train", "--data", t["data"], "--output", t["run"], "--iterations", "3", "--patch-size", "32",
            "--batch-size", "2", "--labeled-bs", "2", "--val-every", "3", "--quiet");
        Assert.True(c1 == 0, e1);
        foreach (var (ext, fmt) in new[] { ("pt", "pt"), ("safetensors", "safetensors"), ("onnx", "onnx") })
        {
            var (c, o, e) = Run(new[] { "export", t["run/best.ckpt"], t[$"w.{ext}"], "--format", fmt }.Concat(ext == "pt" ? new[] { "--sample", t["sample.safetensors"] } : Array.Empty<string>()).ToArray());
            Assert.True(c == 0, e);
            Assert.Contains("SSL4MIS UNet", o);
        }
        // the sample holds a 32x32 input (the checkpoint's patch) and SemiSeg's logits for it
        var sample = TorchSharp.PyBridge.Safetensors.LoadStateDict(t["sample.safetensors"]);
        Assert.Equal(new long[] { 1, 1, 32, 32 }, sample["input"].shape);
        Assert.Equal(new long[] { 1, 4, 32, 32 }, sample["logits"].shape);

        var (ce, _, ee) = Run("evaluate", "--data", t["data"], "--checkpoint", t["run/best.ckpt"], "--output", t["eval-ckpt"]);
        Assert.True(ce == 0, ee);
        foreach (var ext in new[] { "pt", "safetensors" })
        {
            var (c, o, e) = Run("evaluate", "--data", t["data"], "--checkpoint", t[$"w.{ext}"], "--input-size", "32,32", "--output", t[$"eval-{ext}"]);
            Assert.True(c == 0, e);
            Assert.Contains("read as SSL4MIS UNet", o);
            Assert.Contains("4 classes", o);
            Assert.Equal(File.ReadAllText(t["eval-ckpt/metrics.csv"]), File.ReadAllText(t[$"eval-{ext}/metrics.csv"]));
        }
        var (cp1, _, ep1) = Run("predict", "--checkpoint", t["run/best.ckpt"], "--input", t["data/imagesTs"], "--output", t["pred-ckpt"]);
        var (cp2, _, ep2) = Run("predict", "--checkpoint", t["w.safetensors"], "--input-size", "32,32", "--input", t["data/imagesTs"], "--output", t["pred-st"]);
        Assert.True(cp1 == 0 && cp2 == 0, ep1 + ep2);
        foreach (var f in Directory.GetFiles(t["pred-ckpt"]))
            Assert.Equal(Nifti.ReadLabel(f, out _), Nifti.ReadLabel(Path.Combine(t["pred-st"], Path.GetFileName(f)), out _));

        // --init-from: a Mean Teacher run starts student and teacher from the exported weights
        var (ci, _, ei) = Run("train", "--data", t["data"], "--method", "mean-teacher", "--init-from", t["w.pt"], "--output", t["ft"],
            "--iterations", "1", "--patch-size", "32", "--batch-size", "2", "--labeled-bs", "1", "-q");
        Assert.True(ci == 0, ei);
        Assert.Contains("initialised 2 network(s) of method mean-teacher", File.ReadAllText(t["ft/train.log"]));

        // a state dict of another class count is refused, naming the file and the mis-shaped parameter
        using (var three = new SemiSeg.Models.UNet2D(new SemiSeg.Models.UNetConfig { NumClasses = 3 }))
            PyTorchWeights.Export(three, t["three.pt"], WeightsFormat.Pt);
        var (cb, _, eb) = Run("train", "--data", t["data"], "--init-from", t["three.pt"], "--output", t["bad"], "--iterations", "1", "--patch-size", "32",
            "--batch-size", "2", "--labeled-bs", "2", "-q");
        Assert.Equal(2, cb);
        Assert.Contains("three.pt", eb);
        Assert.Contains("outConv.weight [3,16,3,3] where the run's network has [4,16,3,3]", eb);
        var (cb2, _, eb2) = Run("evaluate", "--data", t["data"], "--checkpoint", t["three.pt"]);
        Assert.Equal(2, cb2);
        Assert.Contains("predicts 3 classes, the dataset has 4", eb2);
        var (cb3, _, eb3) = Run("evaluate", "--data", t["data"], "--checkpoint", t["w.pt"], "--input-size", "30,32");
        Assert.Equal(2, cb3);
        Assert.Contains("multiple of 16", eb3);
        var (cb4, _, eb4) = Run("export", t["run/best.ckpt"], t["w.bin2"]);
        Assert.Equal(2, cb4);
        Assert.Contains("unknown weights format", eb4);
    }

    [Fact]
    public void ExportedVNetScoresLikeItsCheckpoint()
    {
        using var t = new TempDir();
        Assert.Equal(0, Run("phantom", "la", "-o", t["la"], "--count", "2").code);
        var (c1, _, e1) = Run("train", "--network", "vnet", "--data", t["la"], "--labeled", "2", "--output", t["run"], "--iterations", "2",
            "--patch-size", "32", "--patch-depth", "16", "--batch-size", "2", "--labeled-bs", "2", "--quiet");
        Assert.True(c1 == 0, e1);
        var (c2, o2, e2) = Run("export", t["run/best.ckpt"], t["v.pt"]);
        Assert.True(c2 == 0, e2);
        Assert.Contains("UA-MT VNet (16 filters", o2);
        var (c3, _, e3) = Run("evaluate", "--data", t["la"], "--checkpoint", t["run/best.ckpt"], "--stride", "16,32,32", "--output", t["e1"]);
        Assert.True(c3 == 0, e3);
        var (c4, o4, e4) = Run("evaluate", "--data", t["la"], "--checkpoint", t["v.pt"], "--input-size", "16,32,32", "--stride", "16,32,32", "--output", t["e2"]);
        Assert.True(c4 == 0, e4);
        Assert.Contains("read as UA-MT VNet", o4);
        Assert.Equal(File.ReadAllText(t["e1/metrics.csv"]), File.ReadAllText(t["e2/metrics.csv"]));
        var (c5, _, e5) = Run("evaluate", "--data", t["la"], "--checkpoint", t["v.pt"], "--input-size", "32,32");
        Assert.Equal(2, c5);
        Assert.Contains("give d,h,w", e5);
    }
}
