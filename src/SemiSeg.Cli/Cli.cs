using System.CommandLine;
using SemiSeg.Cli.Commands;
using Spectre.Console;

namespace SemiSeg.Cli;

/// <summary>The `semiseg` command line: a thin layer over the SemiSeg library.</summary>
public static class Cli
{
    public static RootCommand Build()
    {
        var root = new RootCommand("SemiSeg: semi-supervised medical image segmentation (train, evaluate, predict) on TorchSharp.");
        root.Add(TrainCommand.Create());
        root.Add(TrainCommand.Create(pretrain: true));
        root.Add(EvaluateCommand.Create());
        root.Add(PredictCommand.Create());
        root.Add(DemoCommand.Create());
        root.Add(BenchCommand.Create());
        root.Add(ReportCommand.Create());
        root.Add(GridCommand.Create());
        root.Add(MethodsCommand.Create());
        root.Add(PhantomCommand.Create());
        return root;
    }

    /// <summary>Runs the CLI; bad input ends with one clear message naming the file and the problem (exit code 2).</summary>
    public static int Run(string[] args)
    {
        try
        {
            return Build().Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        }
        catch (Exception e) when (UserError(e) is string msg)
        {
            Console.Error.WriteLine($"error: {msg}");
            return 2;
        }
    }

    /// <summary>Errors caused by input (files, data, options) as one line; null for a program fault.</summary>
    public static string? UserError(Exception e)
    {
        if (e is AggregateException ae && ae.InnerExceptions.Count == 1) e = ae.InnerExceptions[0];
        if (e is System.Reflection.TargetInvocationException { InnerException: { } inner }) e = inner;
        return e switch
        {
            FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException or IOException or UnauthorizedAccessException
                or SemiSeg.Training.TrainingDivergedException => e.Message,
            _ => null,
        };
    }

    internal static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
}
