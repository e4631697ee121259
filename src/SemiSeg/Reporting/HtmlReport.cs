using System.Globalization;
using System.Net;
using System.Text;

namespace SemiSeg.Reporting;

/// <summary>
/// `semiseg report --html FILE`: one self-contained page (no external file, script or font) that a person opens in a
/// browser: per data group the comparison table and the over-seeds table, a box plot of every evaluated run's
/// per-case test Dice, every run's training curves (loss terms and validation Dice, as curves.png), and the
/// evaluation's overlay pictures where `evaluate --overlays` wrote them (PNG files under EVAL/overlays/). Charts are
/// inline SVG, pictures inline PNG (base64). A small inline script records what the browser actually rendered in
/// &lt;body data-rendered="..."&gt; (charts and pictures with a non-zero size, tables with rows), which the
/// headless-Chromium check reads back.
/// </summary>
public static class HtmlReport
{
    public static string Build(IReadOnlyList<RunRecord> runs, string baseline, string title = "SemiSeg report")
    {
        var compared = RunComparison.Compare(runs, baseline);
        var tables = RunComparison.Tables(compared);
        var seedTables = SeedAggregate.Tables(SeedAggregate.Aggregate(runs, baseline));
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        sb.Append($"<title>{E(title)}</title>\n<style>{Css}</style>\n</head>\n<body>\n");
        sb.Append($"<h1>{E(title)}</h1>\n<p class=\"meta\">{runs.Count} run(s), {runs.Count(r => r.Evaluated)} evaluated; generated {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC by SemiSeg {E(typeof(HtmlReport).Assembly.GetName().Version?.ToString() ?? "?")}.</p>\n");
        if (tables.Count > 1)
        {
            sb.Append("<nav><ul>");
            for (int i = 0; i < tables.Count; i++) sb.Append($"<li><a href=\"#g{i}\">{E(tables[i].Title)}</a></li>");
            sb.Append("</ul></nav>\n");
        }
        for (int i = 0; i < tables.Count; i++)
        {
            var t = tables[i];
            var groupRuns = runs.Where(r => r.Data == t.Group).OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
            sb.Append($"<section id=\"g{i}\">\n<h2>{E(t.Title)}</h2>\n");
            Table(sb, t);
            foreach (var st in seedTables.Where(s => s.Group == t.Group)) { sb.Append($"<h3>{E(st.Title.Split(':')[0])}</h3>\n"); Table(sb, st); }

            var evaluated = groupRuns.Where(r => r.Evaluated && r.CaseDice.Count > 0).ToList();
            if (evaluated.Count > 0)
            {
                var boxes = evaluated.Select(r => (r.Name, (IReadOnlyList<double>)r.CaseDice.Values.ToList())).ToList();
                sb.Append("<h3>Per-case test Dice</h3>\n<figure class=\"chart\">");
                sb.Append(Charts.Svg(Charts.DiceBoxes(boxes, $"per-case test Dice ({evaluated[0].CaseDice.Count} cases)"), Math.Max(Charts.Width, 90 * boxes.Count + 160), Charts.Height));
                sb.Append("<figcaption>Box: quartiles and median; whiskers: the furthest cases within 1.5 IQR; points: every case.</figcaption></figure>\n");
            }

            sb.Append("<h3>Training curves</h3>\n<div class=\"grid\">\n");
            foreach (var r in groupRuns)
            {
                var plot = Charts.Curves(RunHistory.Load(r.Folder), r.Name);
                sb.Append($"<figure class=\"chart curve\" data-run=\"{E(r.Name)}\">");
                sb.Append(plot is null ? $"<p>{E(r.Name)}: nothing logged</p>" : Charts.Svg(plot, 560, 320));
                sb.Append("</figure>\n");
            }
            sb.Append("</div>\n");

            var overlays = evaluated.Select(r => (r.Name, Files: Overlays(r))).Where(o => o.Files.Count > 0).ToList();
            if (overlays.Count > 0)
            {
                sb.Append("<h3>Predictions (best, median and worst test cases by Dice)</h3>\n");
                foreach (var (name, files) in overlays)
                {
                    sb.Append($"<h4>{E(name)}</h4>\n<div class=\"grid\">");
                    foreach (var f in files)
                        sb.Append($"<figure class=\"overlay\"><img alt=\"{E(Path.GetFileNameWithoutExtension(f))}\" src=\"data:image/png;base64,{Convert.ToBase64String(File.ReadAllBytes(f))}\"><figcaption>{E(Path.GetFileNameWithoutExtension(f))}</figcaption></figure>");
                    sb.Append("</div>\n");
                }
            }
            sb.Append("</section>\n");
        }
        sb.Append($"<script>{Check}</script>\n</body>\n</html>\n");
        return sb.ToString();
    }

    /// <summary>PNG pictures an evaluation wrote next to its metrics.json (EVAL/overlays/*.png), by name.</summary>
    static List<string> Overlays(RunRecord r)
    {
        var dir = Path.Combine(Path.GetDirectoryName(r.MetricsPath!)!, "overlays");
        return Directory.Exists(dir) ? Directory.GetFiles(dir, "*.png").OrderBy(f => f, StringComparer.Ordinal).ToList() : new List<string>();
    }

    static void Table(StringBuilder sb, ReportTable t)
    {
        if (t.Intro.Length > 0) sb.Append($"<p class=\"intro\">{E(t.Intro)}</p>\n");
        sb.Append("<div class=\"scroll\"><table>\n<thead><tr>");
        foreach (var h in t.Header) sb.Append($"<th>{E(h)}</th>");
        sb.Append("</tr></thead>\n<tbody>\n");
        foreach (var row in t.Rows)
        {
            sb.Append("<tr>");
            for (int c = 0; c < row.Length; c++)
            {
                bool numeric = double.TryParse(row[c].Split(' ')[0].TrimStart('+'), NumberStyles.Float, CultureInfo.InvariantCulture, out _);
                sb.Append(numeric ? $"<td class=\"n\">{E(row[c])}</td>" : $"<td>{E(row[c])}</td>");
            }
            sb.Append("</tr>\n");
        }
        sb.Append("</tbody></table></div>\n");
    }

    static string E(string s) => WebUtility.HtmlEncode(s);

    const string Css = """
        body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}
        h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{font-size:1.05em;margin-top:1.5em}
        .meta,.intro,figcaption{color:#555;font-size:.9em}
        .scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
        th,td{border:1px solid #ddd;padding:.25em .5em;white-space:nowrap}th{background:#f3f3f3;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
        tbody tr:nth-child(even){background:#fafafa}
        .grid{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}.chart svg{max-width:100%;height:auto}
        .overlay img{max-width:640px;image-rendering:pixelated;border:1px solid #ddd}
        """;

    // what the browser rendered, for the headless check: charts and images with a real size, table rows
    const string Check = """
        window.addEventListener('load',function(){
          var svgs=[].slice.call(document.querySelectorAll('figure.chart svg')).filter(function(s){var b=s.getBoundingClientRect();return b.width>50&&b.height>50;}).length;
          var imgs=[].slice.call(document.images).filter(function(i){return i.complete&&i.naturalWidth>0;}).length;
          var rows=document.querySelectorAll('table tbody tr').length;
          var curves=document.querySelectorAll('figure.curve svg').length;
          document.body.setAttribute('data-rendered',JSON.stringify({charts:svgs,images:imgs,imagesTotal:document.images.length,tableRows:rows,curves:curves,width:document.body.scrollWidth}));
        });
        """;
}
