namespace SemiSeg.Runtime;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood, 2014): a counter-based generator whose draw t from a state s is Mix(s + t·γ).
/// The one scalar form behind <see cref="Seeds.Mix"/>, the dropout masks' streams (Models.DropoutMask, whose vector
/// loops use the same constants) and ACTION's negative sampling.
/// </summary>
public static class SplitMix64
{
    /// <summary>The increment γ, 2^64 / φ.</summary>
    public const ulong Golden = 0x9E3779B97F4A7C15UL;
    /// <summary>The two multipliers of the finaliser.</summary>
    public const ulong M1 = 0xBF58476D1CE4E5B9UL, M2 = 0x94D049BB133111EBUL;

    /// <summary>The finaliser: a bijection of 64-bit values that spreads every input bit over the output.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * M1;
        z = (z ^ (z >> 27)) * M2;
        return z ^ (z >> 31);
    }

    /// <summary>Advances <paramref name="state"/> by γ and returns the mixed new state.</summary>
    public static ulong Next(ref ulong state) => Mix(state += Golden);
}
