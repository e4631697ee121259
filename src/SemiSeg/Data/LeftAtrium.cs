namespace SemiSeg.Data;

/// <summary>
/// The left-atrium (LA, 2018 Atrial Segmentation Challenge) protocol of the UA-MT / DTC / MC-Net / BCP lineage:
/// <c>train.list</c> (80 names) and <c>test.list</c> (20 names) beside either one folder per case
/// (<c>NAME/mri_norm2.h5</c>) or UA-MT's <c>2018LA_Seg_Training Set/NAME/mri_norm2.h5</c>; each file holds
/// <c>image</c> (float, normalised) and <c>label</c> (0/1) as (X, Y, Z) arrays, Z the slice axis. The first 4, 8 or 16
/// names of train.list are labeled (5/10/20%), the rest unlabeled; the protocol has no validation set (the lineage
/// selects checkpoints on the test cases, which we do not: without validation the last weights are kept).
/// Volumes are returned as (D, H, W) = (Z, X, Y), so the lineage's 112x112x80 patch is (80, 112, 112) here.
/// </summary>
public static class LeftAtriumDataset
{
    public static readonly string[] ClassNames = { "background", "left atrium" };
    public const string FileName = "mri_norm2.h5";

    public static bool IsLa(string root) =>
        Directory.Exists(root) && File.Exists(Path.Combine(root, "train.list")) && File.Exists(Path.Combine(root, "test.list"))
        && !File.Exists(Path.Combine(root, "train_slices.list"));

    /// <summary>The case file for <paramref name="name"/>: ROOT/NAME/mri_norm2.h5 or ROOT/2018LA_Seg_Training Set/NAME/mri_norm2.h5.</summary>
    public static string Find(string root, string name)
    {
        var candidates = new[] { Path.Combine(root, name, FileName), Path.Combine(root, "2018LA_Seg_Training Set", name, FileName) };
        return candidates.FirstOrDefault(File.Exists)
               ?? throw new FileNotFoundException($"LA: case '{name}' has no {FileName} (looked for {string.Join(" and ", candidates)})", candidates[0]);
    }

    /// <summary>Labeled (the first <paramref name="labeled"/> of train.list), unlabeled (the rest) and test cases.</summary>
    public static VolumeSplit Load(string root, int labeled = 8)
    {
        var train = ReadList(Path.Combine(root, "train.list"));
        var test = ReadList(Path.Combine(root, "test.list"));
        if (labeled <= 0) throw new ArgumentException($"LA: the labeled set is empty ({labeled} labeled volumes); the protocol uses 4, 8 or 16");
        if (labeled > train.Count) throw new ArgumentException($"LA: {labeled} labeled volumes asked for, train.list has {train.Count}");
        CaseRef Case(string n, Split s, bool withLabel) { var f = Find(root, n); return new CaseRef(n, f, withLabel ? f : null, s); }
        return new VolumeSplit(
            $"LA ({labeled} labeled volumes)",
            train.Take(labeled).Select(n => Case(n, Split.Train, true)).ToList(),
            train.Skip(labeled).Select(n => Case(n, Split.Train, false)).ToList(),
            new List<CaseRef>(),
            test.Select(n => Case(n, Split.Test, true)).ToList(),
            ClassNames) { Reader = Read };
    }

    /// <summary>Reads a case as (D, H, W) = (Z, X, Y) from its (X, Y, Z) HDF5 arrays.</summary>
    public static Volume Read(CaseRef c)
    {
        var raw = Hdf5.Read(c.ImagePath, c.LabelPath != null, c.Name);
        return ZFirst(raw);
    }

    /// <summary>(X, Y, Z) stored as (D, H, W) → (Z, X, Y).</summary>
    public static Volume ZFirst(Volume v)
    {
        int nx = v.Depth, ny = v.Height, nz = v.Width;
        var img = new float[v.Image.Length];
        var lab = v.Label is null ? null : new byte[v.Label.Length];
        for (int x = 0; x < nx; x++)
            for (int y = 0; y < ny; y++)
                for (int z = 0; z < nz; z++)
                {
                    int src = (x * ny + y) * nz + z, dst = (z * nx + x) * ny + y;
                    img[dst] = v.Image[src];
                    if (lab != null) lab[dst] = v.Label![src];
                }
        return new Volume(v.Name, nz, nx, ny, img, lab);
    }

    static List<string> ReadList(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"LA: '{path}' does not exist", path);
        var names = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        if (names.Count == 0) throw new InvalidDataException($"LA: '{path}' lists no cases");
        return names;
    }
}

/// <summary>A volume-level split for 3D training: labeled, unlabeled, validation and test cases.</summary>
public sealed record VolumeSplit(string Name, IReadOnlyList<CaseRef> Labeled, IReadOnlyList<CaseRef> Unlabeled,
    IReadOnlyList<CaseRef> Val, IReadOnlyList<CaseRef> Test, IReadOnlyList<string> ClassNames)
{
    public int NumClasses => ClassNames.Count;

    /// <summary>How a case is read as (D, H, W) (the LA files are stored (X, Y, Z)); default <see cref="VolumeIO.Read"/>.</summary>
    public Func<CaseRef, Volume> Reader { get; init; } = ReadFiles;

    /// <summary>The default reader: each case is its image and label files (a PSFHS image's equal planes as one).</summary>
    public static readonly Func<CaseRef, Volume> ReadFiles = c => VolumeIO.Read(c);

    /// <summary>The volumes behind a slice-level dataset (ACDC, a folder of NIfTI volumes, a CSV): each case whose slices
    /// are labeled, each whose slices are unlabeled, and the same validation and test volumes.</summary>
    public static VolumeSplit FromManifest(DatasetManifest m)
    {
        var labeled = m.Labeled.Select(s => s.Case).Distinct().ToList();
        var unlabeled = m.Unlabeled.Select(s => s.Case).Distinct().Where(c => !labeled.Contains(c)).ToList();
        return new VolumeSplit(m.Name, labeled, unlabeled, m.Val, m.Test, m.ClassNames);
    }

    public string Summary() => $"{Name}: {Labeled.Count} labeled volumes, {Unlabeled.Count} unlabeled, {Val.Count} val, {Test.Count} test, {NumClasses} classes";
}

/// <summary>
/// The LA lineage's 3D training augmentation (UA-MT dataloaders/la_heart.py): RandomRotFlip — rot90 by k ∈ {0..3} in
/// the slice plane, then a flip along one in-plane axis — and RandomCrop to the patch, zero-padding first (the image;
/// label 0) where a side is not larger than the patch, by (patch − size)/2 + 3 on each side as the reference does.
/// Axis order (D, H, W); the patch is (80, 112, 112) for the lineage's 112x112x80.
/// </summary>
public static class VolumeAugment
{
    public static (float[] image, byte[]? label) RotFlipCrop(Volume v, (int d, int h, int w) patch, Random rng, bool rotFlip = true)
    {
        float[] img = v.Image; byte[]? lab = v.Label; int d = v.Depth, h = v.Height, w = v.Width;
        if (rotFlip)
        {
            int k = rng.Next(4), axis = rng.Next(2);
            (img, lab, h, w) = Rot90(img, lab, d, h, w, k);
            (img, lab) = Flip(img, lab, d, h, w, axis == 0 ? 1 : 2);
        }
        return Crop(img, lab, d, h, w, patch, rng);
    }

    /// <summary>Rotates every slice by k·90° (numpy rot90 on the (H, W) axes: counter-clockwise).</summary>
    public static (float[] img, byte[]? lab, int h, int w) Rot90(float[] img, byte[]? lab, int d, int h, int w, int k)
    {
        k = ((k % 4) + 4) % 4;
        for (int r = 0; r < k; r++)
        {
            // numpy rot90(m)[i, j] = m[j, W-1-i]; output shape (W, H)
            var ni = new float[img.Length]; var nl = lab is null ? null : new byte[lab.Length];
            for (int z = 0; z < d; z++)
                for (int i = 0; i < w; i++)
                    for (int j = 0; j < h; j++)
                    {
                        int dst = (z * w + i) * h + j, src = (z * h + j) * w + (w - 1 - i);
                        ni[dst] = img[src];
                        if (nl != null) nl[dst] = lab![src];
                    }
            img = ni; lab = nl; (h, w) = (w, h);
        }
        return (img, lab, h, w);
    }

    /// <summary>Flips along axis 1 (H) or 2 (W) of (D, H, W).</summary>
    public static (float[] img, byte[]? lab) Flip(float[] img, byte[]? lab, int d, int h, int w, int axis)
    {
        var ni = new float[img.Length]; var nl = lab is null ? null : new byte[lab.Length];
        for (int z = 0; z < d; z++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int sy = axis == 1 ? h - 1 - y : y, sx = axis == 2 ? w - 1 - x : x;
                    int dst = (z * h + y) * w + x, src = (z * h + sy) * w + sx;
                    ni[dst] = img[src];
                    if (nl != null) nl[dst] = lab![src];
                }
        return (ni, nl);
    }

    public static (float[] image, byte[]? label) Crop(float[] img, byte[]? lab, int d, int h, int w, (int d, int h, int w) patch, Random rng)
    {
        // the reference pads every side by (patch - size)//2 + 3 when any side is <= the patch
        bool pad = d <= patch.d || h <= patch.h || w <= patch.w;
        int pd = pad ? Math.Max((patch.d - d) / 2 + 3, 0) : 0, ph = pad ? Math.Max((patch.h - h) / 2 + 3, 0) : 0, pw = pad ? Math.Max((patch.w - w) / 2 + 3, 0) : 0;
        int D = d + 2 * pd, H = h + 2 * ph, W = w + 2 * pw;
        int z0 = rng.Next(D - patch.d + 1), y0 = rng.Next(H - patch.h + 1), x0 = rng.Next(W - patch.w + 1);
        var oi = new float[patch.d * patch.h * patch.w]; var ol = lab is null ? null : new byte[oi.Length];
        for (int z = 0; z < patch.d; z++)
        {
            int sz = z0 + z - pd;
            if (sz < 0 || sz >= d) continue;
            for (int y = 0; y < patch.h; y++)
            {
                int sy = y0 + y - ph;
                if (sy < 0 || sy >= h) continue;
                for (int x = 0; x < patch.w; x++)
                {
                    int sx = x0 + x - pw;
                    if (sx < 0 || sx >= w) continue;
                    int dst = (z * patch.h + y) * patch.w + x, src = (sz * h + sy) * w + sx;
                    oi[dst] = img[src];
                    if (ol != null) ol[dst] = lab![src];
                }
            }
        }
        return (oi, ol);
    }
}
