using SemiSeg.Data;

namespace SemiSeg.Tests.Data;

public class LeftAtriumTests
{
    /// <summary>Writes a case as the LA files store it: (X, Y, Z) arrays with value 100x + 10y + z.</summary>
    static void WriteCase(string root, string name, int nx, int ny, int nz, bool uaMtFolder)
    {
        var img = new float[nx * ny * nz]; var lab = new byte[img.Length];
        for (int x = 0; x < nx; x++) for (int y = 0; y < ny; y++) for (int z = 0; z < nz; z++)
        {
            int i = (x * ny + y) * nz + z;
            img[i] = 100 * x + 10 * y + z;
            lab[i] = (byte)(x == 1 && y == 2 ? 1 : 0);
        }
        var dir = uaMtFolder ? Path.Combine(root, "2018LA_Seg_Training Set", name) : Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        Hdf5.Write(Path.Combine(dir, LeftAtriumDataset.FileName), new Volume(name, nx, ny, nz, img, lab));
    }

    [Fact]
    public void LaLayoutSplitsByTheListsAndReadsZFirst()
    {
        using var t = new TempDir();
        var root = t["la"];
        WriteCase(root, "caseA", 6, 5, 4, uaMtFolder: false);
        WriteCase(root, "caseB", 6, 5, 4, uaMtFolder: true);
        WriteCase(root, "caseC", 6, 5, 4, uaMtFolder: false);
        File.WriteAllLines(Path.Combine(root, "train.list"), new[] { "caseA", "caseB" });
        File.WriteAllLines(Path.Combine(root, "test.list"), new[] { "caseC" });
        Assert.True(LeftAtriumDataset.IsLa(root));
        var split = LeftAtriumDataset.Load(root, labeled: 1);
        Assert.Equal(new[] { "caseA" }, split.Labeled.Select(c => c.Name));
        Assert.Equal(new[] { "caseB" }, split.Unlabeled.Select(c => c.Name));
        Assert.Null(split.Unlabeled[0].LabelPath);
        Assert.Equal(new[] { "caseC" }, split.Test.Select(c => c.Name));
        Assert.Equal(2, split.NumClasses);

        var v = LeftAtriumDataset.Read(split.Labeled[0]);
        Assert.Equal((4, 6, 5), (v.Depth, v.Height, v.Width));              // (Z, X, Y)
        for (int z = 0; z < 4; z++) for (int x = 0; x < 6; x++) for (int y = 0; y < 5; y++)
            Assert.Equal(100 * x + 10 * y + z, v.Image[(z * 6 + x) * 5 + y]);
        Assert.Equal(4, v.Label!.Count(b => b == 1));                        // the (x=1, y=2) column, all 4 slices
        Assert.Null(LeftAtriumDataset.Read(split.Unlabeled[0]).Label);

        var e = Assert.Throws<ArgumentException>(() => LeftAtriumDataset.Load(root, labeled: 3));
        Assert.Contains("train.list has 2", e.Message);
        File.WriteAllLines(Path.Combine(root, "test.list"), new[] { "caseC", "missing" });
        var f = Assert.Throws<FileNotFoundException>(() => LeftAtriumDataset.Load(root, labeled: 1));
        Assert.Contains("missing", f.Message);
    }

    [Fact]
    public void Rot90FollowsNumpyAndLabelsMoveWithTheImage()
    {
        // numpy: np.rot90([[1,2,3],[4,5,6]]) == [[3,6],[2,5],[1,4]]
        var img = new float[] { 1, 2, 3, 4, 5, 6 };
        var (r, rl, h, w) = VolumeAugment.Rot90(img, img.Select(v => (byte)v).ToArray(), 1, 2, 3, 1);
        Assert.Equal((3, 2), (h, w));
        Assert.Equal(new float[] { 3, 6, 2, 5, 1, 4 }, r);
        Assert.Equal(r.Select(v => (byte)v), rl!);
        var (r4, _, h4, w4) = VolumeAugment.Rot90(img, null, 1, 2, 3, 4);
        Assert.Equal((2, 3), (h4, w4));
        Assert.Equal(img, r4);
        var (fh, _) = VolumeAugment.Flip(img, null, 1, 2, 3, 1);
        Assert.Equal(new float[] { 4, 5, 6, 1, 2, 3 }, fh);
        var (fw, _) = VolumeAugment.Flip(img, null, 1, 2, 3, 2);
        Assert.Equal(new float[] { 3, 2, 1, 6, 5, 4 }, fw);
    }

    [Fact]
    public void RandomCropIsASubBlockAndPadsSmallVolumes()
    {
        var rng = new Random(5);
        int d = 10, h = 12, w = 14;
        var img = Enumerable.Range(0, d * h * w).Select(i => (float)(i + 1)).ToArray();
        var vol = new Volume("v", d, h, w, img, img.Select(v => (byte)(v % 2)).ToArray());
        var (pi, pl) = VolumeAugment.RotFlipCrop(vol, (4, 6, 8), rng, rotFlip: false);
        Assert.Equal(4 * 6 * 8, pi.Length);
        // a contiguous block: consecutive x differ by 1, consecutive y by w, consecutive z by h*w
        Assert.Equal(1, pi[1] - pi[0]);
        Assert.Equal(w, pi[8] - pi[0]);
        Assert.Equal(h * w, pi[48] - pi[0]);
        Assert.Equal(pi.Select(v => (byte)(v % 2)), pl!);
        // smaller than the patch: zero-padded around, every voxel either 0 or from the volume
        var (qi, ql) = VolumeAugment.RotFlipCrop(vol, (16, 16, 16), rng);
        Assert.Equal(16 * 16 * 16, qi.Length);
        Assert.Contains(0f, qi);
        Assert.True(qi.Where(v => v != 0).All(v => v >= 1 && v <= d * h * w));
        Assert.True(qi.Count(v => v != 0) > d * h * w / 2, "most of the volume should be inside the padded crop");
        Assert.Equal(qi.Length, ql!.Length);
    }
}
