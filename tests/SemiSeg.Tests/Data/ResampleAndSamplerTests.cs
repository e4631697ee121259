using SemiSeg.Data;

namespace SemiSeg.Tests.Data;

public class ResampleAndSamplerTests
{
    [Fact]
    public void ZoomNearestFollowsScipyOrder0()
    {
        // scipy.ndimage.zoom(np.arange(4.), 7/4, order=0) -> [0, 1, 1, 2, 2, 3, 3]: input coord o*(3/6), rounded half up
        var z = Resample.ZoomNearest(new float[] { 0, 1, 2, 3 }, 1, 4, 1, 7);
        Assert.Equal(new float[] { 0, 1, 1, 2, 2, 3, 3 }, z);
        var down = Resample.ZoomNearest(Enumerable.Range(0, 6).Select(i => (byte)i).ToArray(), 1, 6, 1, 3);
        Assert.Equal(new byte[] { 0, 3, 5 }, down); // coords 0, 2.5, 5
    }

    [Fact]
    public void Rot90AndFlipMatchNumpy()
    {
        // np.rot90([[0,1,2],[3,4,5]]) = [[2,5],[1,4],[0,3]]
        int h = 2, w = 3;
        var r = Resample.Rot90(new[] { 0, 1, 2, 3, 4, 5 }, ref h, ref w, 1);
        Assert.Equal((3, 2), (h, w));
        Assert.Equal(new[] { 2, 5, 1, 4, 0, 3 }, r);
        Assert.Equal(new[] { 3, 4, 5, 0, 1, 2 }, Resample.Flip(new[] { 0, 1, 2, 3, 4, 5 }, 2, 3, 0));
        Assert.Equal(new[] { 2, 1, 0, 5, 4, 3 }, Resample.Flip(new[] { 0, 1, 2, 3, 4, 5 }, 2, 3, 1));
    }

    [Fact]
    public void RotationByNinetyDegreesIsAQuarterTurn()
    {
        var a = Enumerable.Range(0, 25).ToArray();
        var rot = Resample.RotateNearest(a, 5, 5, 90);
        int h = 5, w = 5;
        var q1 = Resample.Rot90(a, ref h, ref w, 1);
        var q3 = Resample.Rot90(a, ref h, ref w, 3);
        Assert.True(rot.SequenceEqual(q1) || rot.SequenceEqual(q3));
        Assert.Equal(a, Resample.RotateNearest(a, 5, 5, 0));
    }

    [Fact]
    public void AugmenterKeepsImageAndLabelAlignedAndResizes()
    {
        var aug = new SliceAugmenter(32, 32);
        var img = new float[20 * 24]; var lab = new byte[20 * 24];
        for (int i = 0; i < img.Length; i++) { lab[i] = (byte)((i % 24) < 12 ? 1 : 2); img[i] = lab[i]; }
        for (int s = 0; s < 20; s++)
        {
            var (ai, al) = aug.Apply(img, lab, 20, 24, new Random(s));
            Assert.Equal(32 * 32, ai.Length);
            for (int i = 0; i < ai.Length; i++) Assert.Equal(ai[i], (float)al![i]); // nearest for both: values stay paired
        }
    }

    [Fact]
    public void SamplerIsAPureFunctionAndWalksLabeledPermutations()
    {
        var s = new TwoStreamBatchSampler(10, 7, 3, 2, seed: 5);
        var again = new TwoStreamBatchSampler(10, 7, 3, 2, seed: 5);
        // 10 labeled, batch 3: 3 batches per epoch, the tail of 1 dropped, like the reference grouper
        var epoch0 = Enumerable.Range(0, 3).SelectMany(b => s.Batch(b).labeled).ToArray();
        Assert.Equal(9, epoch0.Distinct().Count());
        for (int b = 0; b < 10; b++)
        {
            Assert.Equal(s.Batch(b).labeled, again.Batch(b).labeled);
            Assert.Equal(s.Batch(b).unlabeled, again.Batch(b).unlabeled);
            Assert.All(s.Batch(b).unlabeled, i => Assert.InRange(i, 0, 6));
        }
        // the unlabeled stream covers every item once per 7 draws
        var u = Enumerable.Range(0, 7).SelectMany(b => s.Batch(b).unlabeled).Take(7).ToArray();
        Assert.Equal(7, u.Distinct().Count());
        Assert.NotEqual(s.Batch(0).labeled, new TwoStreamBatchSampler(10, 7, 3, 2, seed: 6).Batch(0).labeled);
    }

    [Fact]
    public void SamplerWorksFullySupervisedAndRejectsAnEmptyLabeledSet()
    {
        var s = new TwoStreamBatchSampler(2, 0, 4, 0, seed: 1);
        var (l, u) = s.Batch(0);
        Assert.Equal(4, l.Length);
        Assert.Empty(u);
        Assert.Contains("labeled set is empty", Assert.Throws<ArgumentException>(() => new TwoStreamBatchSampler(0, 5, 2, 2, 1)).Message);
    }

    [Fact]
    public void LoaderBatchesAreDeterministicWhateverTheWorkers()
    {
        using var t = new TempDir();
        CardiacPhantom.WriteDataset(t.Path, labeled: 2, unlabeled: 2, val: 1, test: 0, depth: 3, size: 32);
        var m = CustomDataset.Load(t.Path, 4);
        Assert.Equal(6, m.Labeled.Count);
        Assert.Equal(6, m.Unlabeled.Count);
        Batch Get(int workers, long index)
        {
            var sampler = new TwoStreamBatchSampler(m.Labeled.Count, m.Unlabeled.Count, 2, 2, 3);
            using var loader = new BatchLoader(m.Labeled, m.Unlabeled, sampler, new SliceAugmenter(32, 32), new CaseCache(4), 3, startBatch: index, prefetch: 3, workers: workers);
            return loader.Next();
        }
        var a = Get(1, 5); var b = Get(3, 5);
        Assert.Equal(a.Images, b.Images);
        Assert.Equal(a.Labels, b.Labels);
        Assert.Equal(4, a.Count);
        Assert.Equal(2, a.LabeledCount);
        Assert.Equal(2 * 32 * 32, a.Labels.Length);
        Assert.True(a.Items.Take(2).All(i => i.Labeled) && a.Items.Skip(2).All(i => !i.Labeled));
    }

    [Fact]
    public void OutOfRangeLabelValueNamesTheFile()
    {
        using var t = new TempDir();
        Directory.CreateDirectory(t["imagesTr"]); Directory.CreateDirectory(t["labelsTr"]);
        var lab = new byte[16]; lab[3] = 9;
        Nifti.Write(Path.Combine(t["imagesTr"], "a.nii"), new Volume("a", 1, 4, 4, new float[16]), false);
        Nifti.Write(Path.Combine(t["labelsTr"], "a.nii"), new Volume("a", 1, 4, 4, new float[16], lab), true);
        var m = CustomDataset.Load(t.Path, 4);
        var e = Assert.Throws<InvalidDataException>(() => new CaseCache(4).Get(m.Labeled[0].Case));
        Assert.Contains("labelsTr", e.Message);
        Assert.Contains("value 9", e.Message);
    }
}
