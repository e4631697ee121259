using System.Globalization;
using SemiSeg.Training;
using Spectre.Console;

namespace SemiSeg.Cli;

/// <summary>Renders training progress: a live progress bar (loss, LR, it/s, ETA) on a terminal, plain lines otherwise.</summary>
internal sealed class ConsoleMonitor : ITrainingMonitor
{
    ProgressTask? _task;
    readonly bool _quiet;

    public ConsoleMonitor(bool quiet = false) => _quiet = quiet;

    public static T Run<T>(long total, bool quiet, Func<ConsoleMonitor, T> body)
    {
        var m = new ConsoleMonitor(quiet);
        if (!Cli.Interactive || quiet) return body(m);
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                m._task = ctx.AddTask("training", maxValue: total);
                result = body(m);
                m._task.StopTask();
            });
        return result;
    }

    public void OnMessage(string message)
    {
        if (_quiet) return;
        if (_task != null) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(message)}[/]");
        else Console.WriteLine(message);
    }

    public void OnIteration(IterationInfo i)
    {
        var line = string.Create(CultureInfo.InvariantCulture,
            $"it {i.Iteration}/{i.MaxIterations} loss {i.Loss:F4} lr {i.LearningRate:G3} {i.ItersPerSecond:F2} it/s ETA {Eta(i.Eta)} data-wait {100 * i.DataWaitFraction:F1}%");
        if (_task != null)
        {
            _task.Value = i.Iteration;
            _task.Description = Markup.Escape(line);
        }
        else if (!_quiet) Console.WriteLine(line);
    }

    public void OnValidation(ValidationInfo v) { }

    static string Eta(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m" : $"{t.Minutes}m{t.Seconds:00}s";
}
