using System.Text.Json.Nodes;
using SemiSeg.Data;
using SemiSeg.Training;

namespace SemiSeg.Tests.Training;

public class ProvenanceTests
{
    [Fact]
    public void RecordsVersionsDeviceAndDataFingerprintsThatFollowTheLists()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 1, val: 1, test: 1, depth: 3, size: 32);
        var a = Provenance.Describe(CustomDataset.Load(t["data"], 4));
        var b = Provenance.Describe(CustomDataset.Load(t["data"], 4));
        // the build's git commit (the SDK embeds it when the sources are a git checkout, as CI's clone is)
        bool inGit = false;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null && !inGit; d = d.Parent) inGit = Directory.Exists(Path.Combine(d.FullName, ".git")) || File.Exists(Path.Combine(d.FullName, ".git"));
        Assert.Matches(inGit ? "^[0-9a-f]{40}$" : "^unknown$", a["semiseg_commit"]!.GetValue<string>());
        Assert.StartsWith("0.107.0", a["torchsharp_version"]!.GetValue<string>());
        Assert.StartsWith("2.", a["libtorch_version"]!.GetValue<string>());
        Assert.Equal("cpu", a["device"]!["type"]!.GetValue<string>());
        Assert.True(a["device"]!["torch_threads"]!.GetValue<int>() >= 1);
        foreach (var list in new[] { "labeled", "unlabeled", "val", "test" })
            Assert.Equal(a["data"]![list]!["sha256"]!.GetValue<string>(), b["data"]![list]!["sha256"]!.GetValue<string>());
        Assert.Equal(6, a["data"]!["labeled"]!["count"]!.GetValue<int>()); // 2 volumes x 3 slices

        // one fewer labeled case: the labeled fingerprint changes, the validation one does not
        var m = CustomDataset.Load(t["data"], 4, labeledCount: 1);
        var c = Provenance.Describe(m);
        Assert.NotEqual(a["data"]!["labeled"]!["sha256"]!.GetValue<string>(), c["data"]!["labeled"]!["sha256"]!.GetValue<string>());
        Assert.Equal(a["data"]!["val"]!["sha256"]!.GetValue<string>(), c["data"]!["val"]!["sha256"]!.GetValue<string>());

        // a start and a resume are both kept
        Provenance.Record(t["run"], a, resume: false);
        Provenance.Record(t["run"], c, resume: true);
        var runs = JsonNode.Parse(File.ReadAllText(t["run/provenance.json"]))!["runs"]!.AsArray();
        Assert.Equal(new[] { "start", "resume" }, runs.Select(r => r!["event"]!.GetValue<string>()));
    }
}
