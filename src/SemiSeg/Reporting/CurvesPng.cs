using SemiSeg.Training;

namespace SemiSeg.Reporting;

/// <summary>
/// Keeps RUN/curves.png current while a run trains (nnU-Net's progress.png): redrawn from train.log and
/// validation.csv after each validation, and at most once a minute from the log lines in between (so a run without
/// validation volumes has curves too). A drawing failure is reported once and never stops the training.
/// </summary>
public sealed class CurvesPng(string runFolder, Action<string>? warn = null) : ITrainingMonitor
{
    static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);
    DateTime _last = DateTime.MinValue;
    bool _failed;

    public void OnIteration(IterationInfo info)
    {
        if (DateTime.UtcNow - _last >= Interval) Draw();
    }

    public void OnValidation(ValidationInfo info) => Draw();

    /// <summary>Draws now (also what the CLI calls once the run has ended).</summary>
    public void Draw()
    {
        _last = DateTime.UtcNow;
        if (_failed) return;
        try { Charts.WriteCurvesPng(runFolder); }
        catch (Exception e) when (e is IOException or FormatException or InvalidOperationException or DllNotFoundException or TypeInitializationException or UnauthorizedAccessException)
        {
            _failed = true;
            (warn ?? Console.Error.WriteLine)($"curves.png not drawn ({e.GetType().Name}: {e.Message}); the run goes on without it");
        }
    }
}
