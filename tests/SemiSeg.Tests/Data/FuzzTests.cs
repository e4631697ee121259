using SemiSeg.Inference;
using SemiSeg.Data;
using SemiSeg.Models;
using SemiSeg.Training;
using Xunit.Abstractions;

namespace SemiSeg.Tests.Data;

/// <summary>
/// Random bit flips and truncations of a real NIfTI, HDF5, PNG, MetaImage file and checkpoint (fixed seed): every
/// case must end in a clean error (the CLI's one-line exception types, naming the file, one line) or a correct read
/// (the original data, or a changed voxel value where the flip hit uncompressed voxel data): never an unexpected
/// exception (a crash in the CLI), a hang, or other data read silently.
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    /// <summary><paramref name="Defines"/>: whether a byte is voxel data or a header field that defines the data
    /// (sizes, type, offset, scaling) in a format without a checksum; a flip there may change what is read, faithfully.</summary>
    sealed record Target(string Name, string File, Func<string, object[]> Read, Func<long, bool> Defines);

    static Func<long, bool> MetaImageDefines(string file)
    {
        var text = System.Text.Encoding.Latin1.GetString(File.ReadAllBytes(file));
        int end = text.IndexOf("ElementDataFile = LOCAL\n", StringComparison.Ordinal) + 24;
        string[] keys = { "NDims", "DimSize", "ElementType", "ElementNumberOfChannels", "ElementByteOrderMSB", "BinaryDataByteOrderMSB", "CompressedData", "HeaderSize" };
        return pos =>
        {
            if (pos >= end) return true;
            int start = text.LastIndexOf('\n', (int)pos) + 1;
            return keys.Any(k => text.AsSpan(start).StartsWith(k));
        };
    }

    static bool NiftiDefines(long p) => p >= 352 || p < 4 || p is >= 40 and < 56 or >= 70 and < 74 or >= 108 and < 120 or >= 344 and < 348;

    static object[] Values(Volume v) => new object[] { v.Depth, v.Height, v.Width, v.Image, v.Label ?? Array.Empty<byte>() };

    static bool Same(object[] a, object[] b) => a.Length == b.Length && a.Zip(b).All(p => p.First switch
    {
        float[] x => x.AsSpan().SequenceEqual((float[])p.Second),
        byte[] x => x.AsSpan().SequenceEqual((byte[])p.Second),
        _ => Equals(p.First, p.Second),
    });

    static string? Real(params string[] parts)
    {
        var acdc = SharedData.AcdcRoot();
        if (acdc == null) return null;
        var p = Path.Combine(new[] { Path.GetDirectoryName(acdc)! }.Concat(parts).ToArray());
        return File.Exists(p) ? p : null;
    }

    List<Target> Targets(TempDir t)
    {
        var vol = CardiacPhantom.Generate("f", 11, 4, 48);
        Nifti.Write(t["f.nii"], vol, asLabel: false);
        Nifti.Write(t["f.nii.gz"], vol, asLabel: false);
        var h5 = Real("acdc", "data", "patient094_frame01_slice_10.h5");
        // SemiSeg's own HDF5 writer stores uncompressed data under metadata without checksums: a flip anywhere
        // may faithfully change what is read, so on that stand-in only crashes, hangs and unclear errors count
        bool h5Checked = h5 != null;
        if (h5 == null) Hdf5.Write(h5 = t["f.h5"], vol);
        var png = Real("hc18-subset", "training_set", "000_HC.png");
        if (png == null) Png.WriteImage(png = t["f.png"], vol.Image.Take(48 * 48).Select(x => Math.Clamp(x / 4 + 0.5f, 0, 1)).ToArray(), 48, 48);
        var mha = Real("psfh-subset", "label_mha", "03744.mha");
        if (mha == null) MetaImage.Write(mha = t["f.mha"], 1, 48, 48, bytes: vol.Label!.Take(48 * 48).ToArray());
        output.WriteLine($"sources: {h5}, {png}, {mha} (shared data {(SharedData.AcdcRoot() == null ? "absent: written here" : "present")})");

        CardiacPhantom.WriteDataset(t["d"], labeled: 2, unlabeled: 0, val: 0, test: 0, depth: 2, size: 32);
        new Trainer(new TrainOptions
        {
            OutputDir = t["run"], MaxIterations = 1, PatchHeight = 32, PatchWidth = 32, BatchSize = 2, LabeledBatchSize = 2, Threads = 1,
            Network = new UNetConfig { Features = new[] { 2, 4, 8, 8, 8 } },
        }, CustomDataset.Load(t["d"], 4)).Run();

        return new List<Target>
        {
            new("nifti", t["f.nii"], p => Values(Nifti.ReadImage(p)), NiftiDefines),
            new("nifti-gz", t["f.nii.gz"], p => Values(Nifti.ReadImage(p)), _ => false),
            new("hdf5", h5, p => Values(Hdf5.Read(p, withLabel: true)), _ => !h5Checked),
            new("png", png, p => Values(Png.ReadImage(p)).Append(Png.ReadMask(p, out _, out _)).ToArray(), _ => false),
            new("mha", mha, p => { var (l, d, h, w) = MetaImage.ReadLabel(p); return new object[] { d, h, w, l }; }, MetaImageDefines(mha)),
            new("checkpoint", t["run/last.ckpt"], p =>
            {
                var (net, meta) = CheckpointFile.LoadAnyNetwork(p);
                using var _ = net;
                return net.parameters().Select(x => (object)x.data<float>().ToArray()).Append(meta.Iteration).ToArray();
            }, _ => false),
        };
    }

    static bool OneLineUserError(Exception e, string file) =>
        e is InvalidDataException or IOException or ArgumentException or UnauthorizedAccessException
        && e.Message.Contains(Path.GetFileName(file)) && !e.Message.Any(char.IsControl);

    [Fact]
    public async Task FlipsAndTruncationsEndInACleanErrorOrACorrectRead()
    {
        using var t = new TempDir();
        var rng = new Random(20261201);
        int cases = 0, clean = 0, identical = 0, faithful = 0;
        var bad = new List<string>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (var target in Targets(t))
        {
            var original = File.ReadAllBytes(target.File);
            var expected = target.Read(target.File);
            int n = target.Name == "checkpoint" ? 40 : 52;
            for (int i = 0; i < n; i++)
            {
                var bytes = (byte[])original.Clone();
                string what;
                byte[]? definingOnly = null; // the original with only the flips that may change the data
                if (i % 3 == 2)
                {
                    int len = rng.Next(0, bytes.Length);
                    bytes = bytes[..len];
                    what = $"cut to {len}";
                }
                else
                {
                    int span = i % 3 == 0 ? bytes.Length : Math.Min(bytes.Length, 1024); // every third flip set aims at the header
                    var at = Enumerable.Range(0, rng.Next(1, 5)).Select(_ => rng.Next(span)).ToArray();
                    foreach (var p in at) bytes[p] ^= (byte)(1 << rng.Next(8));
                    definingOnly = (byte[])original.Clone();
                    foreach (var p in at.Where(p => target.Defines(p))) definingOnly[p] = bytes[p];
                    what = $"bits flipped at {string.Join(",", at)}";
                }
                var path = t[$"case{cases:000}{Path.GetExtension(target.File) switch { ".gz" => ".nii.gz", var ext => ext }}"];
                File.WriteAllBytes(path, bytes);
                cases++;
                var run = Task.Run(() => target.Read(path));
                if (await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(20))) != run) { bad.Add($"{target.Name} {what}: hang"); continue; }
                if (run.Exception?.InnerException is { } e)
                {
                    if (OneLineUserError(e, path)) clean++;
                    else bad.Add($"{target.Name} {what}: {e.GetType().Name}: {e.Message}");
                }
                else if (Same(await run, expected)) identical++;
                else if (definingOnly != null && FaithfulTo(target, definingOnly, await run, t[$"ref{cases}{Path.GetExtension(path)}"])) faithful++;
                else bad.Add($"{target.Name} {what}: read without error but the data differ");
                File.Delete(path);
            }
        }
        output.WriteLine($"{cases} cases in {clock.Elapsed.TotalSeconds:F1} s: {clean} clean errors, {identical + faithful} correct reads " +
                         $"({identical} identical to the original, {faithful} changed only as flipped voxels or size/type fields say), {bad.Count} crashes/hangs/wrong reads");
        foreach (var b in bad) output.WriteLine(b);
        Assert.True(bad.Count == 0, string.Join("\n", bad.Take(20)));
        Assert.Equal(cases, clean + identical + faithful);
    }

    /// <summary>A changed read is faithful when the flips in fields that do not define the data changed nothing:
    /// reading the file with only the defining flips gives the same result.</summary>
    static bool FaithfulTo(Target target, byte[] definingOnly, object[] result, string scratch)
    {
        File.WriteAllBytes(scratch, definingOnly);
        try { return Same(target.Read(scratch), result); }
        catch (Exception) { return false; }
        finally { File.Delete(scratch); }
    }
}
