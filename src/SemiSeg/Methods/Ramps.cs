using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Methods;

/// <summary>Ramp-up / ramp-down schedules of the SSMIS code bases (SSL4MIS utils/ramps.py, PyMIC get_rampup_ratio).</summary>
public static class Ramps
{
    /// <summary>exp(−5·(1 − t/L)²) for t clipped to [0, L] (Laine &amp; Aila); 1 when L = 0.</summary>
    public static double Sigmoid(double current, double length)
    {
        if (length <= 0) return 1.0;
        double p = 1.0 - Math.Clamp(current, 0, length) / length;
        return Math.Exp(-5.0 * p * p);
    }

    public static double Linear(double current, double length) => length <= 0 ? 1.0 : Math.Clamp(current / length, 0, 1);

    /// <summary>0.5·(cos(π·t/L) + 1), for ramp-downs.</summary>
    public static double CosineDown(double current, double length) => length <= 0 ? 1.0 : 0.5 * (Math.Cos(Math.PI * Math.Clamp(current, 0, length) / length) + 1);

    /// <summary>The SSL4MIS consistency weight: w·sigmoid_rampup(iteration // 150, rampup), reaching w at 150·rampup;
    /// a ramp-up of 0 (or less) gives w from the start.</summary>
    public static double Ssl4misConsistency(double weight, long iteration, double rampupEpochs) => weight * Sigmoid(iteration / 150, rampupEpochs);
}
