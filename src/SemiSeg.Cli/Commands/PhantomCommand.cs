using System.CommandLine;
using SemiSeg.Data;

namespace SemiSeg.Cli.Commands;

/// <summary>Writes the built-in synthetic datasets to disk, in the layouts real data comes in.</summary>
internal static class PhantomCommand
{
    public static Command Create()
    {
        var cmd = new Command("phantom", "Write a synthetic dataset: 'cardiac' (NIfTI volumes, imagesTr/labelsTr layout), 'hc18' (fetal-head ultrasound, HC18 layout) or 'la' (3D left-atrium-like volumes, the LA protocol's h5 layout).");
        var kind = new Argument<string>("kind") { Description = "cardiac, hc18 or la" };
        kind.AcceptOnlyFromAmong("cardiac", "hc18", "la");
        var output = new Option<string>("--output", "-o") { Description = "Folder to create (must not exist or be empty)", Required = true };
        var count = new Option<int?>("--count") { Description = "hc18: annotated training images (default 200); la: training volumes (default 20; 6 more are written for test.list)" };
        var unlabeled = new Option<int>("--unannotated") { Description = "hc18: extra test_set images without annotations", DefaultValueFactory = _ => 0 };
        var seed = new Option<int>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 18 };
        cmd.Add(kind);
        foreach (var o in new Option[] { output, count, unlabeled, seed }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            var root = r.GetValue(output)!;
            if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
                throw new IOException($"phantom folder '{root}' is not empty; choose another --output");
            if (r.GetValue(kind) == "la")
            {
                int n = r.GetValue(count) ?? 20;
                if (n < 2) throw new ArgumentException($"--count {n}: at least 2 training volumes are needed (labeled and unlabeled)");
                AtriumPhantom.WriteLa(root, n, seed: r.GetValue(seed));
                Console.WriteLine($"wrote {n} training + 6 test atrium phantoms (40x64x64) in the LA layout to {root}");
                Console.WriteLine(LeftAtriumDataset.Load(root, Math.Min(4, n - 1)).Summary() + " (with --labeled 4)");
            }
            else if (r.GetValue(kind) == "hc18")
            {
                if (r.GetValue(count) is int c0 && c0 < 10) throw new ArgumentException($"--count {r.GetValue(count)}: at least 10 images are needed to hold out validation and test subjects");
                UltrasoundPhantom.WriteHc18(root, r.GetValue(count) ?? 200, r.GetValue(unlabeled), seed: r.GetValue(seed));
                Console.WriteLine($"wrote {r.GetValue(count) ?? 200} annotated fetal-head images (+{r.GetValue(unlabeled)} unannotated) in the HC18 layout to {root}");
                Console.WriteLine(Hc18Dataset.Load(root).Summary());
            }
            else
            {
                CardiacPhantom.WriteDataset(root, seed: r.GetValue(seed));
                Console.WriteLine($"wrote the cardiac phantom (imagesTr/labelsTr/imagesVal/labelsVal/imagesTs/labelsTs) to {root}");
            }
            return 0;
        });
        return cmd;
    }
}
