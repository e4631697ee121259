using System.Text.Json;
using System.Text.Json.Serialization;

namespace SemiSeg.Runtime;

/// <summary>The JSON conventions of every file SemiSeg writes (config.json, checkpoint metadata, run records):
/// snake_case keys, kebab-case enums, NaN/Infinity as named literals, indented.</summary>
public static class JsonFormat
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals | JsonNumberHandling.AllowReadingFromString,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };
}
