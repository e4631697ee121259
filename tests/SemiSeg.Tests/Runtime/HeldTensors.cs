using System.Collections;
using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Runtime;

/// <summary>Every tensor an object holds, found by reflection: fields of SemiSeg's own objects (modules included),
/// through collections and into library modules' children (whose registered state the callers check directly).</summary>
static class HeldTensors
{
    public static List<(string path, Tensor tensor)> Of(object root)
    {
        var found = new List<(string, Tensor)>();
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        void Visit(object? o, string path, int depth)
        {
            if (o is null || depth > 12 || !seen.Add(o)) return;
            if (o is Tensor t) { if (!t.IsInvalid) found.Add((path, t)); return; }
            if (o is string || o.GetType().IsPrimitive || o is Delegate) return;
            bool ours = o.GetType().Namespace?.StartsWith("SemiSeg") == true;
            if (o is IEnumerable e && o.GetType().Namespace?.StartsWith("System") == true)
            {
                int i = 0;
                foreach (var x in e) Visit(x, $"{path}[{i++}]", depth + 1);
                return;
            }
            if (o is nn.Module mod && !ours)
            {
                foreach (var (n, c) in mod.named_children()) Visit(c, $"{path}.{n}", depth + 1);
                return;
            }
            if (!ours) return;
            for (var type = o.GetType(); type != null && type.Namespace?.StartsWith("SemiSeg") == true; type = type.BaseType)
                foreach (var f in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                    if (!f.FieldType.IsValueType || f.FieldType.IsGenericType) Visit(f.GetValue(o), $"{path}.{f.Name}", depth + 1);
        }
        Visit(root, root.GetType().Name, 0);
        return found;
    }
}
