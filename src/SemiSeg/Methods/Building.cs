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

/// <summary>An exponential moving average of a student's weights.</summary>
public static class Ema
{
    /// <summary>A teacher that starts as an exact copy of the student and never receives gradients.</summary>
    public static Models.Segmenter2D FrozenCopy(Models.Segmenter2D student) => FrozenCopy(student, () => Models.Segmenter2D.Create(student.Config));

    /// <summary>A frozen exact copy of any network, made by <paramref name="create"/> (the same architecture).</summary>
    public static T FrozenCopy<T>(T student, Func<T> create) where T : nn.Module
    {
        var teacher = create();
        teacher.load_state_dict(student.state_dict());
        foreach (var p in teacher.parameters()) p.requires_grad_(false);
        return teacher;
    }

    /// <summary>The mean-teacher warm-up: α = min(1 − 1/(t+1), decay).</summary>
    public static double WarmupAlpha(double decay, long step) => Math.Min(1.0 - 1.0 / (step + 1), decay);

    /// <summary>
    /// teacher ← α·teacher + (1−α)·student, in place (unlike PyMIC's discarded non-in-place add). Parameters only
    /// (SSL4MIS), or the whole state dict including BN running statistics (BCP / ABD, <paramref name="includeBuffers"/>;
    /// integer buffers such as num_batches_tracked are copied).
    /// </summary>
    public static void Update(nn.Module teacher, nn.Module student, double alpha, bool includeBuffers = false)
    {
        using var noGrad = no_grad();
        // explicit Scalars, alive for the whole update (an implicit double → Scalar temporary can be finalized during
        // the native call; see Models.StableLeakyReLU)
        using var a = alpha.ToScalar();
        using var b = (1 - alpha).ToScalar();
        var tp = teacher.parameters().ToArray(); var sp = student.parameters().ToArray();
        for (int i = 0; i < tp.Length; i++) tp[i].mul_(a).add_(sp[i], alpha: b);
        if (!includeBuffers) return;
        var tb = teacher.buffers().ToArray(); var sb = student.buffers().ToArray();
        for (int i = 0; i < tb.Length; i++)
        {
            if (tb[i].is_floating_point()) tb[i].mul_(a).add_(sb[i], alpha: b);
            else tb[i].copy_(sb[i]);
        }
    }
}

/// <summary>
/// Method hyper-parameters as key=value pairs (from --param or a config file) over typed defaults. Unknown keys are
/// an error naming the method's known keys, so a typo never silently falls back to a default.
/// </summary>
public sealed class MethodSettings
{
    readonly Dictionary<string, string> _values;
    readonly HashSet<string> _read = new(StringComparer.OrdinalIgnoreCase);
    readonly Dictionary<string, string> _effective = new(StringComparer.OrdinalIgnoreCase);

    public MethodSettings(IReadOnlyDictionary<string, string>? values = null) =>
        _values = new Dictionary<string, string>(values ?? new Dictionary<string, string>(), StringComparer.OrdinalIgnoreCase);

    public static MethodSettings Parse(IEnumerable<string> pairs)
    {
        var d = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var p in pairs)
        {
            int eq = p.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"--param '{p}': expected key=value");
            d[p[..eq].Trim()] = p[(eq + 1)..].Trim();
        }
        return new MethodSettings(d);
    }

    public double Double(string key, double fallback)
    {
        _read.Add(key);
        double v = fallback;
        if (_values.TryGetValue(key, out var s) && (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out v) || !double.IsFinite(v)))
            throw new ArgumentException($"method parameter {key}='{s}' is not a finite number");
        _effective[key] = v.ToString(CultureInfo.InvariantCulture);
        return v;
    }

    public long Long(string key, long fallback)
    {
        _read.Add(key);
        long v = fallback;
        if (_values.TryGetValue(key, out var s) && !long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v))
            throw new ArgumentException($"method parameter {key}='{s}' is not an integer");
        _effective[key] = v.ToString(CultureInfo.InvariantCulture);
        return v;
    }

    public string String(string key, string fallback)
    {
        _read.Add(key);
        var v = _values.TryGetValue(key, out var s) ? s : fallback;
        _effective[key] = v;
        return v;
    }

    public bool Bool(string key, bool fallback)
    {
        _read.Add(key);
        bool v = fallback;
        if (_values.TryGetValue(key, out var s) && !bool.TryParse(s, out v))
            throw new ArgumentException($"method parameter {key}='{s}' is not true/false");
        _effective[key] = v ? "true" : "false";
        return v;
    }

    /// <summary>Throws if a given key was never read by the method.</summary>
    public void EnsureAllUsed(string method)
    {
        var unknown = _values.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"method '{method}' has no parameter {string.Join(", ", unknown)}; its parameters are {string.Join(", ", _read.OrderBy(k => k))}");
    }

    /// <summary>The key=value pairs given (before defaults).</summary>
    public IReadOnlyDictionary<string, string> Given => _values;

    /// <summary>The values in force (defaults and overrides), for config.json.</summary>
    public IReadOnlyDictionary<string, string> Effective => _effective;
}
