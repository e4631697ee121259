using System.Globalization;
using System.Text.RegularExpressions;

namespace SemiSeg.Data;

/// <summary>
/// The ACDC protocol exactly as the SSL4MIS lineage runs it: training items are the slices of train_slices.list in
/// file order; the labeled set is its first N slices (N from <see cref="PatientsToSlices"/>: 3 patients = 68 slices,
/// 7 = 136), the rest are unlabeled; validation = val.list volumes, test = test.list volumes. Slices are looked up in
/// data/slices/ (SSL4MIS) or data/ (the flat public copy).
/// </summary>
public static class AcdcDataset
{
    public static readonly IReadOnlyDictionary<int, int> PatientsToSlices = new Dictionary<int, int>
    {
        [1] = 32, [3] = 68, [7] = 136, [14] = 256, [21] = 396, [28] = 512, [35] = 664, [70] = 1312, [140] = 1312,
    };

    public static readonly string[] ClassNames = { "background", "RV", "Myo", "LV" };
    static readonly Regex NameRx = new(@"^(patient\d+)_(frame\d+)(?:_slice_(\d+))?$", RegexOptions.Compiled);

    public static DatasetManifest Load(string root, int labeledPatients, int? labeledSlices = null)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"ACDC root '{root}' does not exist");
        int nLabeled;
        if (labeledSlices is int ls) nLabeled = ls;
        else if (!PatientsToSlices.TryGetValue(labeledPatients, out nLabeled))
            throw new ArgumentException($"ACDC: {labeledPatients} labeled patients is not a protocol setting; use one of {string.Join(", ", PatientsToSlices.Keys)} or give --labeled-slices");
        var slices = ReadList(Path.Combine(root, "train_slices.list"));
        if (nLabeled <= 0) throw new ArgumentException("ACDC: the labeled set is empty (0 labeled slices); at least one labeled slice is needed");
        if (nLabeled > slices.Count) throw new ArgumentException($"ACDC: {nLabeled} labeled slices asked for, train_slices.list has {slices.Count}");
        var labeled = new List<SliceRef>();
        var unlabeled = new List<SliceRef>();
        var counts = slices.Select(s => ParseName(s)).GroupBy(m => (m.patient, m.phase)).ToDictionary(g => g.Key, g => g.Count());
        for (int i = 0; i < slices.Count; i++)
        {
            var path = Find(root, slices[i], slice: true);
            var (p, ph, idx) = ParseName(slices[i]);
            var meta = new MetaLabels(p, ph, idx - 1, counts[(p, ph)]);
            bool isLabeled = i < nLabeled;
            var c = new CaseRef(slices[i], path, isLabeled ? path : null, Split.Train);
            (isLabeled ? labeled : unlabeled).Add(new SliceRef(c, 0, meta));
        }
        List<CaseRef> Volumes(string list, Split split) =>
            ReadList(Path.Combine(root, list)).Select(n => { var f = Find(root, n, slice: false); return new CaseRef(n, f, f, split); }).ToList();
        return new DatasetManifest
        {
            Name = $"ACDC ({(labeledSlices is null ? $"{labeledPatients} labeled patients, " : "")}{nLabeled} labeled slices)",
            NumClasses = 4,
            ClassNames = ClassNames,
            Labeled = labeled,
            Unlabeled = unlabeled,
            Val = Volumes("val.list", Split.Val),
            Test = Volumes("test.list", Split.Test),
        };
    }

    /// <summary>ACDC as volumes for 3D training: the train.list volumes of the same labeled patients as
    /// <see cref="Load"/> (both phases), the other train.list volumes unlabeled, val.list and test.list as usual.</summary>
    public static VolumeSplit LoadVolumes(string root, int labeledPatients)
    {
        var m = Load(root, labeledPatients);
        var patients = m.Labeled.Select(s => s.Meta.Patient).ToHashSet();
        var train = ReadList(Path.Combine(root, "train.list"));
        // training volumes are rebuilt from their slices where the volume file itself is absent (some copies of the
        // SSL4MIS data ship the training set as slices only)
        CaseRef Case(string n, bool labeled)
        {
            var f = Path.Combine(root, "data", n + ".h5");
            if (!File.Exists(f) && SlicePaths(root, n).Count == 0)
                throw new FileNotFoundException($"ACDC: training volume '{n}' has neither {f} nor slices {n}_slice_N.h5", f);
            return new CaseRef(n, f, labeled ? f : null, Split.Train);
        }
        return new VolumeSplit($"ACDC volumes ({labeledPatients} labeled patients)",
            train.Where(n => patients.Contains(ParseName(n).patient)).Select(n => Case(n, true)).ToList(),
            train.Where(n => !patients.Contains(ParseName(n).patient)).Select(n => Case(n, false)).ToList(),
            m.Val, m.Test, ClassNames) { Reader = c => ReadVolume(root, c) };
    }

    /// <summary>An ACDC volume from its file, or stacked from its slice files (slice_1, slice_2, ... in order).</summary>
    public static Volume ReadVolume(string root, CaseRef c)
    {
        if (File.Exists(c.ImagePath)) return VolumeIO.Read(c);
        var slices = SlicePaths(root, c.Name).Select(p => Hdf5.Read(p, c.LabelPath != null, c.Name)).ToList();
        if (slices.Count == 0) throw new FileNotFoundException($"ACDC: '{c.Name}' has no volume file and no slices", c.ImagePath);
        var first = slices[0];
        var img = new float[slices.Count * first.SliceSize];
        var lab = c.LabelPath != null ? new byte[img.Length] : null;
        for (int z = 0; z < slices.Count; z++)
        {
            var sl = slices[z];
            if (sl.Height != first.Height || sl.Width != first.Width)
                throw new InvalidDataException($"ACDC: slices of '{c.Name}' differ in size ({first.Height}x{first.Width} vs {sl.Height}x{sl.Width})");
            Array.Copy(sl.Image, 0, img, z * first.SliceSize, first.SliceSize);
            if (lab != null) Array.Copy(sl.Label!, 0, lab, z * first.SliceSize, first.SliceSize);
        }
        return new Volume(c.Name, slices.Count, first.Height, first.Width, img, lab);
    }

    static List<string> SlicePaths(string root, string volume)
    {
        var paths = new List<string>();
        for (int i = 1; ; i++)
        {
            var name = $"{volume}_slice_{i}.h5";
            var p = new[] { Path.Combine(root, "data", "slices", name), Path.Combine(root, "data", name) }.FirstOrDefault(File.Exists);
            if (p == null) return paths;
            paths.Add(p);
        }
    }

    static (string patient, string phase, int slice) ParseName(string name)
    {
        var m = NameRx.Match(name);
        if (!m.Success) return (name, "", 1);
        return (m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Success ? int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture) : 1);
    }

    static List<string> ReadList(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ACDC list file '{path}' does not exist", path);
        var items = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).Select(l => l.EndsWith(".h5") ? l[..^3] : l).ToList();
        if (items.Count == 0) throw new InvalidDataException($"ACDC list file '{path}' is empty");
        return items;
    }

    static string Find(string root, string name, bool slice)
    {
        var candidates = slice
            ? new[] { Path.Combine(root, "data", "slices", name + ".h5"), Path.Combine(root, "data", name + ".h5") }
            : new[] { Path.Combine(root, "data", name + ".h5") };
        foreach (var c in candidates) if (File.Exists(c)) return c;
        throw new FileNotFoundException($"ACDC: '{name}.h5' listed but not found (looked in {string.Join(", ", candidates)})", candidates[0]);
    }
}

/// <summary>
/// A user's own data. Two layouts:
/// <list type="bullet">
/// <item>a folder in the nnU-Net/MSD convention: imagesTr/ (+ labelsTr/), imagesVal/ + labelsVal/, imagesTs/ +
/// labelsTs/; a training image without a label file is unlabeled; files pair by name (an nnU-Net "_0000" channel
/// suffix on images is ignored; further channels, CASE_0001 beside CASE_0000, are refused by name, since the networks
/// here take one input channel: they are never read as extra cases);</item>
/// <item>a CSV with a header naming the columns <c>image</c>, <c>label</c> (may be empty = unlabeled) and optionally
/// <c>split</c> (train/val/test; default train); relative paths are relative to the CSV's folder.</item>
/// </list>
/// Files may be .h5 (image/label datasets), .nii/.nii.gz, .png or .mha/.mhd. 3D volumes train as their 2D slices.
/// </summary>
public static class CustomDataset
{
    public static DatasetManifest Load(string source, int numClasses, int? labeledCount = null, string[]? classNames = null)
    {
        List<CaseRef> cases;
        if (File.Exists(source) && source.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)) cases = FromCsv(source);
        else if (Directory.Exists(source)) cases = FromFolder(source);
        else throw new FileNotFoundException($"dataset '{source}' is neither a folder nor a .csv file", source);
        var train = cases.Where(c => c.Split == Split.Train).ToList();
        var labeledCases = train.Where(c => c.LabelPath != null).ToList();
        if (labeledCases.Count == 0) throw new InvalidDataException($"dataset '{source}': the labeled set is empty (no training image has a label)");
        if (labeledCount is int n)
        {
            if (n <= 0) throw new ArgumentException($"dataset '{source}': --labeled {n} leaves the labeled set empty");
            if (n > labeledCases.Count) throw new ArgumentException($"dataset '{source}': --labeled {n} asked for, only {labeledCases.Count} training cases have labels");
            // Cases past the first N keep their images as unlabeled data, their labels hidden.
            var hidden = labeledCases.Skip(n).ToHashSet();
            train = train.Select(c => hidden.Contains(c) ? c with { LabelPath = null } : c).ToList();
        }
        var labeled = new List<SliceRef>();
        var unlabeled = new List<SliceRef>();
        foreach (var c in train)
        {
            var (d, _, _) = VolumeIO.ReadShape(c.ImagePath);
            for (int z = 0; z < d; z++)
                (c.LabelPath != null ? labeled : unlabeled).Add(new SliceRef(c, z, new MetaLabels(c.Name, "", z, d)));
        }
        return new DatasetManifest
        {
            Name = $"custom '{Path.TrimEndingDirectorySeparator(Path.GetFullPath(source))}'", // absolute: runs given the same data by another relative path are grouped together by report
            NumClasses = numClasses,
            ClassNames = classNames ?? Enumerable.Range(0, numClasses).Select(i => i == 0 ? "background" : $"class{i}").ToArray(),
            Labeled = labeled,
            Unlabeled = unlabeled,
            Val = cases.Where(c => c.Split == Split.Val).ToList(),
            Test = cases.Where(c => c.Split == Split.Test).ToList(),
        };
    }

    static readonly string[] Extensions = { ".nii.gz", ".nii", ".h5", ".hdf5", ".png", ".mha", ".mhd" };

    static string BaseName(string file)
    {
        var name = Path.GetFileName(file);
        foreach (var e in Extensions)
            if (name.EndsWith(e, StringComparison.OrdinalIgnoreCase)) return name[..^e.Length];
        return name;
    }

    static string Stem(string file)
    {
        var name = Path.GetFileName(file);
        foreach (var e in Extensions)
            if (name.EndsWith(e, StringComparison.OrdinalIgnoreCase)) { name = name[..^e.Length]; break; }
        return Regex.Replace(name, "_0000$", "");
    }

    static IEnumerable<string> ImageFiles(string dir) =>
        Directory.Exists(dir)
            ? Directory.EnumerateFiles(dir).Where(f => Extensions.Any(e => f.EndsWith(e, StringComparison.OrdinalIgnoreCase)) && !Path.GetFileName(f).StartsWith('.')).OrderBy(f => f, StringComparer.Ordinal)
            : Enumerable.Empty<string>();

    static List<CaseRef> FromFolder(string root)
    {
        var result = new List<CaseRef>();
        foreach (var (split, img, lab) in new[] { (Split.Train, "imagesTr", "labelsTr"), (Split.Val, "imagesVal", "labelsVal"), (Split.Test, "imagesTs", "labelsTs") })
        {
            var labels = ImageFiles(Path.Combine(root, lab)).ToDictionary(Stem, f => f);
            var images = ImageFiles(Path.Combine(root, img)).ToList();
            var firstChannels = images.Select(f => Regex.Match(BaseName(f), "^(.+)_0000$")).Where(m => m.Success).Select(m => m.Groups[1].Value).ToHashSet();
            foreach (var f in images)
                if (Regex.Match(BaseName(f), @"^(.+)_(\d{4})$") is { Success: true } m && m.Groups[2].Value != "0000" && firstChannels.Contains(m.Groups[1].Value))
                    throw new InvalidDataException($"dataset '{root}': {img}/{Path.GetFileName(f)} is input channel {int.Parse(m.Groups[2].Value)} of case '{m.Groups[1].Value}' (nnU-Net's _0000, _0001, ... naming); SemiSeg's networks take one channel: keep only the {m.Groups[1].Value}_0000 files, or give a CSV listing one image per case");
            foreach (var f in images)
            {
                var stem = Stem(f);
                string? l = labels.TryGetValue(stem, out var lf) ? lf : null;
                if (l == null && split != Split.Train)
                    throw new InvalidDataException($"dataset '{root}': {img}/{Path.GetFileName(f)} has no label in {lab}/ (validation and test cases need one)");
                result.Add(new CaseRef(stem, f, l, split));
            }
        }
        if (result.Count == 0) throw new InvalidDataException($"dataset '{root}': no images found in imagesTr/, imagesVal/ or imagesTs/");
        return result;
    }

    static List<CaseRef> FromCsv(string csv)
    {
        var lines = File.ReadAllLines(csv).Where(l => l.Trim().Length > 0).ToList();
        if (lines.Count < 2) throw new InvalidDataException($"dataset CSV '{csv}': needs a header line and at least one row");
        var header = lines[0].Split(',').Select(h => h.Trim().ToLowerInvariant()).ToList();
        int iImg = header.IndexOf("image"), iLab = header.IndexOf("label"), iSplit = header.IndexOf("split");
        if (iImg < 0) throw new InvalidDataException($"dataset CSV '{csv}': header '{lines[0]}' has no 'image' column");
        var dir = Path.GetDirectoryName(Path.GetFullPath(csv))!;
        var result = new List<CaseRef>();
        for (int r = 1; r < lines.Count; r++)
        {
            var cols = lines[r].Split(',').Select(c => c.Trim()).ToArray();
            string Col(int i) => i >= 0 && i < cols.Length ? cols[i] : "";
            var img = Col(iImg);
            if (img.Length == 0) throw new InvalidDataException($"dataset CSV '{csv}' line {r + 1}: empty image path");
            img = Path.IsPathRooted(img) ? img : Path.Combine(dir, img);
            if (!File.Exists(img)) throw new FileNotFoundException($"dataset CSV '{csv}' line {r + 1}: image '{img}' does not exist", img);
            var lab = Col(iLab);
            string? labPath = lab.Length == 0 ? null : Path.IsPathRooted(lab) ? lab : Path.Combine(dir, lab);
            if (labPath != null && !File.Exists(labPath)) throw new FileNotFoundException($"dataset CSV '{csv}' line {r + 1}: label '{labPath}' does not exist", labPath);
            var split = Col(iSplit).ToLowerInvariant() switch
            {
                "" or "train" => Split.Train,
                "val" or "valid" or "validation" => Split.Val,
                "test" => Split.Test,
                var s => throw new InvalidDataException($"dataset CSV '{csv}' line {r + 1}: split '{s}' is not train, val or test"),
            };
            if (labPath == null && split != Split.Train) throw new InvalidDataException($"dataset CSV '{csv}' line {r + 1}: a {split} case needs a label");
            result.Add(new CaseRef(Stem(img), img, labPath, split));
        }
        return result;
    }
}
