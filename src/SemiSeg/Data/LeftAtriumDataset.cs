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
