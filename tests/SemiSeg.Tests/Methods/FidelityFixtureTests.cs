using System.Text.Json;
using SemiSeg.Methods;
using TorchSharp;
using static TorchSharp.torch;

namespace SemiSeg.Tests.Methods;

/// <summary>
/// SemiSeg's losses against our own Python transcription of the references' code (Fixtures/fidelity/
/// reference_losses.py, run once with Debian's python3-torch 1.13), on the fixed logits, images and labels stored in
/// the fixtures: the same displaced images, labels and loss terms to 1e-5.
/// </summary>
public class FidelityFixtureTests
{
    static JsonElement Load(string name) => FidelityFixture.Load(name);

    static long[] Shape(JsonElement e) => e.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray();
    static Tensor Floats(JsonElement root, string key)
    {
        var e = root.GetProperty(key);
        return tensor(e.GetProperty("data").EnumerateArray().Select(v => (float)v.GetDouble()).ToArray(), Shape(e));
    }
    static Tensor Longs(JsonElement root, string key)
    {
        var e = root.GetProperty(key);
        return tensor(e.GetProperty("data").EnumerateArray().Select(v => v.GetInt64()).ToArray(), Shape(e));
    }
    static void Close(JsonElement root, string key, Tensor actual) => Assert.Equal(root.GetProperty(key).GetDouble(), actual.item<float>(), 1e-5);

    [Fact]
    public void CpsLossMatchesSsl4misCrossPseudoSupervision2D()
    {
        var f = Load("cps.json");
        int nl = f.GetProperty("labeled_bs").GetInt32();
        double w = Ramps.Ssl4misConsistency(0.1, f.GetProperty("iteration").GetInt64(), 200);
        Assert.Equal(f.GetProperty("weight").GetDouble(), w, 12);
        var t = CrossPseudoSupervisionMethod.Losses(Floats(f, "o1"), Floats(f, "o2"), Longs(f, "label"), nl, w);
        Close(f, "sup", t["sup1"] + t["sup2"]);
        Close(f, "cps", t["cps"]);
        Close(f, "loss", t["loss"]);
    }

    [Fact]
    public void AbdDisplacementsAndLossMatchTheAbdCrossTeachingScript()
    {
        var f = Load("abd.json");
        int nl = f.GetProperty("labeled_bs").GetInt32(), grid = f.GetProperty("grid").GetInt32(), topK = f.GetProperty("top_k").GetInt32();
        var o1 = Floats(f, "o1"); var o2 = Floats(f, "o2"); var x1 = Floats(f, "x1"); var x2 = Floats(f, "x2");
        long n = o1.shape[0], nu = n - nl;
        var (conf1, mean1) = Displacement.PatchScores(softmax(o1, 1), grid, o1);
        var (conf2, mean2) = Displacement.PatchScores(softmax(o2, 1), grid, o2);
        var apply = f.GetProperty("apply").EnumerateArray().Select(v => v.GetBoolean()).ToArray();

        // ABD-I: both views' most confident patch takes the other view's least confident one, images and labels
        var (xi, yi) = Displacement.AbdI(x1.narrow(0, 0, nl), x2.narrow(0, 0, nl), Longs(f, "y1"), Longs(f, "y2"), conf1, conf2, apply, grid);
        Assert.True(xi.eq(Floats(f, "abd_i_images")).all().item<bool>());
        Assert.True(yi.eq(Longs(f, "abd_i_labels")).all().item<bool>());
        Assert.False(xi.eq(cat(new[] { x1.narrow(0, 0, nl), x2.narrow(0, 0, nl) }, 0)).all().item<bool>()); // something moved

        // ABD-R: KL-guided swap of the least confident patch, both views
        var xr = Displacement.AbdR(x1.narrow(0, nl, nu), x2.narrow(0, nl, nu), conf1[nl..], mean1[nl..], conf2[nl..], mean2[nl..], topK, grid);
        Assert.True(xr.eq(Floats(f, "abd_r_images")).all().item<bool>());

        // the loss: both networks on both displaced batches; ABD-R is CPS between their fresh predictions
        double w = Ramps.Ssl4misConsistency(0.1, f.GetProperty("iteration").GetInt64(), 200);
        Assert.Equal(f.GetProperty("weight").GetDouble(), w, 12);
        var t = AdaptiveDisplacementMethod.Losses(o1, o2, Longs(f, "y1"), Longs(f, "y2"), nl, Floats(f, "e1i"), Floats(f, "e2i"), Longs(f, "abd_i_labels"),
            Floats(f, "e1r"), Floats(f, "e2r"), w, 2.0);
        foreach (var k in new[] { "sup", "abd_i", "cps", "abd_r", "loss" }) Close(f, k, t[k]);
    }

    [Fact]
    public void BcpMixLossMatchesTheBcpSelfTrainingStep()
    {
        // x_u = u_a·M + l_a·(1−M) supervised by (pseudo-label 0.5 where M, ground truth 1 in the box); x_l = l_b·M + u_b·(1−M)
        // by (ground truth 1 where M, pseudo-label 0.5 in the box); loss = (Dice + CE) / 2
        var f = Load("bcp.json");
        var mask = Floats(f, "mask"); var outUnl = Floats(f, "out_unl");
        var m = mask.unsqueeze(0).expand(outUnl.shape[0], -1, -1);
        double u = f.GetProperty("u_weight").GetDouble();
        var (ud, uc) = BidirectionalCopyPasteMethod.MixLoss(outUnl, Longs(f, "plab_a"), Longs(f, "lab_a"), m, u, 1.0);
        var (ld, lc) = BidirectionalCopyPasteMethod.MixLoss(Floats(f, "out_l"), Longs(f, "lab_b"), Longs(f, "plab_b"), m, 1.0, u);
        Close(f, "dice", ud + ld);
        Close(f, "ce", uc + lc);
        Close(f, "loss", (ud + ld + uc + lc) / 2);
    }
}
