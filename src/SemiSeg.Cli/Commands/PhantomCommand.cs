using System.CommandLine;
using SemiSeg.Data;

namespace SemiSeg.Cli.Commands;

/// <summary>Writes the built-in synthetic datasets to disk, in the layouts real data comes in.</summary>
internal static class PhantomCommand
{
    public static Command Create()
    {
        var cmd = new Command("phantom", "Write a synthetic dataset: 'cardiac' (NIfTI volumes, imagesTr/labelsTr layout) or 'hc18' (fetal-head ultrasound, HC18 layout).");
        var kind = new Argument<string>("kind") { Description = "cardiac or hc18" };
        kind.AcceptOnlyFromAmong("cardiac", "hc18");
        var output = new Option<string>("--output", "-o") { Description = "Folder to create (must not exist or be empty)", Required = true };
        var count = new Option<int>("--count") { Description = "hc18: annotated training images", DefaultValueFactory = _ => 200 };
        var unlabeled = new Option<int>("--unannotated") { Description = "hc18: extra test_set images without annotations", DefaultValueFactory = _ => 0 };
        var seed = new Option<int>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 18 };
        cmd.Add(kind);
        foreach (var o in new Option[] { output, count, unlabeled, seed }) cmd.Add(o);
        cmd.SetAction(r =>
        {
            var root = r.GetValue(output)!;
            if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
                throw new IOException($"phantom folder '{root}' is not empty; choose another --output");
            if (r.GetValue(kind) == "hc18")
            {
                if (r.GetValue(count) < 10) throw new ArgumentException($"--count {r.GetValue(count)}: at least 10 images are needed to hold out validation and test subjects");
                UltrasoundPhantom.WriteHc18(root, r.GetValue(count), r.GetValue(unlabeled), seed: r.GetValue(seed));
                Console.WriteLine($"wrote {r.GetValue(count)} annotated fetal-head images (+{r.GetValue(unlabeled)} unannotated) in the HC18 layout to {root}");
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
