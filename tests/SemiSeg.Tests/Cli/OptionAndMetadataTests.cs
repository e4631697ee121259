using SemiSeg.Inference;
using System.Text;
using SemiSeg.Data;
using SemiSeg.Training;

namespace SemiSeg.Tests.Cli;

/// <summary>Option values and checkpoint metadata that used to crash with a stack trace end in one line, exit 2.</summary>
public class OptionAndMetadataTests
{
    static (int code, string stdout, string stderr) Run(params string[] args) => CliTests.Run(args);

    static void AssertOneLineError(int code, string stderr, string mentions)
    {
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains(mentions, stderr);
    }

    [Theory]
    [InlineData("--val-every")]
    [InlineData("--save-every")]
    [InlineData("--log-every")]
    public void ZeroIntervalsAreRefused(string option)
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["d"], labeled: 2, unlabeled: 0, val: 1, test: 0, depth: 2, size: 32);
        var (c, _, e) = Run("train", "--data", t["d"], "-o", t["run"], "--iterations", "2", "--patch-size", "32", "--batch-size", "2", "--labeled-bs", "2", option, "0");
        AssertOneLineError(c, e, option);
        Assert.False(File.Exists(t["run/last.ckpt"]));
    }

    [Fact]
    public void AConfigAskingForAHugeNetworkIsRefused()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["d"], labeled: 2, unlabeled: 0, val: 0, test: 0, depth: 2, size: 32);
        File.WriteAllText(t["huge.yaml"], "network:\n  features: [100000, 100000, 100000, 100000, 100000]\n");
        var (c, _, e) = Run("train", "--config", t["huge.yaml"], "--data", t["d"], "-o", t["run"], "--iterations", "2", "--patch-size", "32", "--batch-size", "2", "--labeled-bs", "2");
        AssertOneLineError(c, e, "feature widths");
    }

    [Theory]
    [InlineData("--size", "0")]
    [InlineData("--size", "33")]
    [InlineData("--iters", "0")]
    public void BenchSizesAreChecked(string option, string value)
    {
        var (c, _, e) = Run("bench", option, value, "--batch", "2");
        AssertOneLineError(c, e, option);
    }

    static void WriteMetaOnly(string path, string json)
    {
        using var w = new BinaryWriter(File.Create(path), Encoding.UTF8);
        w.Write(Encoding.ASCII.GetBytes("SEMISEG\n"));
        w.Write(json);
        w.Write(new byte[64]);
    }

    [Theory]
    [InlineData("unknown", "{\"foo\":1}", "foo")]
    [InlineData("patch0", "{\"patch_height\":0,\"patch_width\":0}", "patch 0x0")]
    [InlineData("patch7", "{\"patch_height\":7,\"patch_width\":32}", "patch 7x32")]
    [InlineData("patchneg", "{\"patch_height\":-32,\"patch_width\":32}", "patch -32x32")]
    [InlineData("features", "{\"patch_height\":32,\"patch_width\":32,\"network\":{\"features\":[100000,1,1,1,1]}}", "feature widths")]
    public void BadCheckpointMetadataIsOneLineNamingTheFile(string name, string json, string mentions)
    {
        using var t = new TempDir();
        var ck = t[name + ".ckpt"];
        WriteMetaOnly(ck, json);
        var ex = Assert.Throws<InvalidDataException>(() => CheckpointFile.ReadMeta(ck, out _));
        Assert.Contains(name + ".ckpt", ex.Message);
        Assert.Contains(mentions, ex.Message);
        Png.WriteImage(t["in/a.png"], new float[32 * 32], 32, 32);
        var (c, _, e) = Run("predict", "-c", ck, "-i", t["in"], "-o", t["out"]);
        AssertOneLineError(c, e, name + ".ckpt");
    }
}
