using System.Text.RegularExpressions;

namespace SemiSeg.Tests;

/// <summary>
/// The library's folders depend one way. The order, lowest first (README, "Architecture"):
/// Runtime &lt; Geometry &lt; Data &lt; Models &lt; Interop &lt; Inference &lt; Losses &lt; Methods &lt; Evaluation &lt; Training &lt; Reporting &lt; Grid (&lt; the CLI,
/// a separate assembly). A file may use its own folder and the folders before it; a `using SemiSeg.X`, a fully
/// qualified `SemiSeg.X.Name` or a namespace-relative `X.Name` (inside SemiSeg) naming a later folder fails here, as
/// does a new top-level folder that has no place in the order.
/// </summary>
public class LayeringTests
{
    public static readonly string[] Order = { "Runtime", "Geometry", "Data", "Models", "Interop", "Inference", "Losses", "Methods", "Evaluation", "Training", "Reporting", "Grid" };

    static readonly Regex Comment = new(@"//[^\n]*|/\*.*?\*/", RegexOptions.Singleline | RegexOptions.Compiled);
    static readonly Regex Strings = new(@"@""(?:""""|[^""])*""|\$?""(?:\\.|[^""\\\n])*""", RegexOptions.Compiled);
    static readonly Regex Reference = new(@"(?<![\w.])(?:SemiSeg\.)?(?<folder>" + string.Join("|", Order) + @")\.(?=[A-Z])", RegexOptions.Compiled);
    static readonly Regex Using = new(@"^\s*using\s+(?:static\s+)?SemiSeg\.(?<folder>\w+)", RegexOptions.Multiline | RegexOptions.Compiled);

    /// <summary>The folders a C# source text refers to (comments and string literals do not count).</summary>
    public static IReadOnlySet<string> FoldersUsed(string source)
    {
        var code = Strings.Replace(Comment.Replace(source, ""), "\"\"");
        var used = new HashSet<string>();
        foreach (Match m in Using.Matches(code)) used.Add(m.Groups["folder"].Value);
        foreach (Match m in Reference.Matches(code)) used.Add(m.Groups["folder"].Value);
        return used;
    }

    /// <summary>"file: Folder uses Later" for every upward reference under <paramref name="library"/>.</summary>
    public static List<string> Violations(string library)
    {
        var problems = new List<string>();
        foreach (var dir in Directory.GetDirectories(library).Select(Path.GetFileName).Where(d => d is not ("bin" or "obj")))
        {
            int level = Array.IndexOf(Order, dir);
            if (level < 0) { problems.Add($"{dir}/: a folder without a place in the layering order"); continue; }
            foreach (var file in Directory.EnumerateFiles(Path.Combine(library, dir!), "*.cs", SearchOption.AllDirectories))
                foreach (var used in FoldersUsed(File.ReadAllText(file)))
                    if (Array.IndexOf(Order, used) > level) problems.Add($"{Path.GetRelativePath(library, file)}: {dir} uses {used}");
        }
        return problems;
    }

    static string Library()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "src", "SemiSeg", "SemiSeg.csproj"))) return Path.Combine(d.FullName, "src", "SemiSeg");
        throw new DirectoryNotFoundException("src/SemiSeg not found above the test binary");
    }

    [Fact]
    public void NoFolderImportsALaterOne()
    {
        var problems = Violations(Library());
        Assert.True(problems.Count == 0, "upward dependencies:\n" + string.Join("\n", problems));
    }

    [Fact]
    public void TheCheckSeesUsingsQualifiedNamesAndNewFoldersButNotComments()
    {
        Assert.Contains("Training", FoldersUsed("using SemiSeg.Training;\nclass A {}"));
        Assert.Contains("Training", FoldersUsed("var m = SemiSeg.Training.Checkpoint.Save(x);"));
        Assert.Contains("Evaluation", FoldersUsed("namespace SemiSeg.Data; class A { object e = Evaluation.Metrics.Dice(); }"));
        Assert.Empty(FoldersUsed("/// <see cref=\"Training.Trainer\"/>\n// Methods.Foo\nvar s = \"Training.Trainer\";"));
        Assert.DoesNotContain("Data", FoldersUsed("var n = batch.Data.Count;")); // a member named like a folder

        using var t = new TempDir();
        Directory.CreateDirectory(t["Data"]);
        File.WriteAllText(Path.Combine(t["Data"], "Bad.cs"), "using SemiSeg.Methods;\nnamespace SemiSeg.Data;\n");
        Directory.CreateDirectory(t["Helpers"]);
        var problems = Violations(t.Path);
        Assert.Contains(problems, p => p.Contains("Bad.cs: Data uses Methods"));
        Assert.Contains(problems, p => p.StartsWith("Helpers/"));
    }
}
