using SemiSeg.Data;

namespace SemiSeg.Tests.Data;

/// <summary>`semiseg report` groups runs by their dataset's name, so one folder must give one name however the path
/// to it was written.</summary>
public class DatasetNameTests
{
    [Fact]
    public void OneFolderGivesOneNameWhateverPathLeadsToIt()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t["data"], labeled: 2, unlabeled: 1, val: 1, test: 1, depth: 2, size: 16);
        Directory.CreateDirectory(t["elsewhere"]);
        var direct = CustomDataset.Load(t["data"], 4).Name;
        var roundabout = CustomDataset.Load(Path.Combine(t["elsewhere"], "..", "data") + Path.DirectorySeparatorChar, 4).Name;
        Assert.Equal(direct, roundabout);
        Assert.Contains($"'{Path.GetFullPath(t["data"])}'", direct);
    }
}
