using SemiSeg.Geometry;
using System.Globalization;
using System.Text;
using SemiSeg.Data;

namespace SemiSeg.Evaluation;

/// <summary>One case's head circumference: from the predicted mask's fitted ellipse, and the reference (the dataset's
/// table when it has one, else the fitted ellipse of the reference mask). Null where a mask has no head.</summary>
public sealed record HeadCircumferenceRow(string Case, double PixelMm, double? ReferenceMm, double? PredictedMm)
{
    public double? AbsoluteDifferenceMm => ReferenceMm is double r && PredictedMm is double p ? Math.Abs(p - r) : null;
}

/// <summary>Head circumference (HC18's measurement: Ramanujan perimeter of the ellipse fitted to the head, times the
/// pixel size) for every evaluated case, with the mean absolute and signed differences the challenge reports.</summary>
public sealed class HeadCircumferenceReport
{
    readonly List<HeadCircumferenceRow> _rows = new();
    public IReadOnlyList<HeadCircumferenceRow> Rows => _rows;

    /// <summary>The class whose ellipse is the head: the first class whose name contains "head"; null if none.</summary>
    public static byte? HeadClass(IReadOnlyList<string> classNames)
    {
        for (int i = 1; i < classNames.Count; i++)
            if (classNames[i].Contains("head", StringComparison.OrdinalIgnoreCase)) return (byte)i;
        return null;
    }

    public void Add(CaseRef c, Volume vol, byte[] prediction, byte headClass)
    {
        double px = c.PixelSizeMm ?? vol.Spacing[2];
        double? reference = c.HeadCircumferenceMm ?? (vol.Label is null ? null : EllipseFit.HeadCircumferenceMm(vol.Label, vol.Height, vol.Width, px, headClass));
        _rows.Add(new HeadCircumferenceRow(c.Name, px, reference, EllipseFit.HeadCircumferenceMm(prediction, vol.Height, vol.Width, px, headClass)));
    }

    public double MeanAbsoluteDifferenceMm => Mean(_rows.Select(r => r.AbsoluteDifferenceMm));
    public double MeanDifferenceMm => Mean(_rows.Select(r => r.PredictedMm - r.ReferenceMm));
    /// <summary>Cases whose prediction has no head to measure.</summary>
    public int Missing => _rows.Count(r => r.PredictedMm is null);

    static double Mean(IEnumerable<double?> v) => MeasurementFormat.Mean(v);

    public string ToCsv()
    {
        static string F(double? v) => MeasurementFormat.Csv(v);
        var sb = new StringBuilder("case,pixel_size_mm,hc_reference_mm,hc_predicted_mm,abs_difference_mm\n");
        foreach (var r in _rows) sb.Append($"{r.Case},{F(r.PixelMm)},{F(r.ReferenceMm)},{F(r.PredictedMm)},{F(r.AbsoluteDifferenceMm)}\n");
        return sb.ToString();
    }

    public string Summary()
    {
        var s = string.Create(CultureInfo.InvariantCulture,
            $"head circumference: mean absolute difference {MeanAbsoluteDifferenceMm:0.00} mm, mean difference {MeanDifferenceMm:0.00} mm over {_rows.Count - Missing} cases");
        return Missing > 0 ? s + $" ({Missing} predictions without a head)" : s;
    }

    /// <summary>The summary and per-case values for metrics.json.</summary>
    public object ToJson()
    {
        static double? R(double? v) => MeasurementFormat.Json(v);
        return new
        {
            definition = "Ramanujan perimeter of the ellipse fitted to the head, times the pixel size; reference from the dataset's table where it has one",
            units = "mm",
            mean_abs_difference = R(MeanAbsoluteDifferenceMm),
            mean_difference = R(MeanDifferenceMm),
            cases = _rows.Count(r => r.AbsoluteDifferenceMm is not null),
            missing_predictions = Missing,
            per_case = _rows.Select(r => new { @case = r.Case, pixel_size_mm = r.PixelMm, reference = R(r.ReferenceMm), predicted = R(r.PredictedMm), abs_difference = R(r.AbsoluteDifferenceMm) }).ToArray(),
        };
    }

    public void Write(string directory) => AtomicFile.WriteAllText(Path.Combine(directory, "hc.csv"), ToCsv());
}

/// <summary>The number handling the per-case measurement reports share: means over the defined values, CSV and JSON numbers.</summary>
internal static class MeasurementFormat
{
    /// <summary>Mean of the defined values; NaN when none is.</summary>
    public static double Mean(IEnumerable<double?> v)
    {
        var x = v.Where(d => d.HasValue).Select(d => d!.Value).ToList();
        return x.Count == 0 ? double.NaN : x.Average();
    }

    /// <summary>Up to 3 decimals, empty when undefined.</summary>
    public static string Csv(double? v) => v is double d ? d.ToString("0.###", CultureInfo.InvariantCulture) : "";

    /// <summary>Rounded to 4 decimals, null when undefined or NaN.</summary>
    public static double? Json(double? v) => v is double d && !double.IsNaN(d) ? Math.Round(d, 4) : null;
}
