using System.CommandLine;
using SemiSeg.Methods;

namespace SemiSeg.Cli.Commands;

internal static class MethodsCommand
{
    public static Command Create()
    {
        var cmd = new Command("methods", "List the training methods with their papers.");
        cmd.SetAction(_ =>
        {
            foreach (var e in MethodRegistry.Slices)
                Console.WriteLine($"{e.Name,-14} {e.Summary}\n{"",-14} paper: {e.Paper}{(e.UsesUnlabeled ? "" : " (uses labeled data only)")}");
            Console.WriteLine("\n3D (train --network vnet|unet3d):");
            foreach (var e in MethodRegistry.Volumes)
                Console.WriteLine($"{e.Name,-14} {e.Summary}\n{"",-14} paper: {e.Paper}");
            return 0;
        });
        return cmd;
    }
}
