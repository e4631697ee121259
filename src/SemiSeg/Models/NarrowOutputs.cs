using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SemiSeg.Models;

/// <summary>
/// The output convolutions (16 → class count) are the one shape class that has been seen to go wrong in oneDNN: on
/// some AVX-512 CPUs the input gradient of a convolution with fewer than 16 output channels in NCHW layout raced and
/// read unset padding (issue 15), because the kernel pads the channels to its 16-wide block. When
/// <see cref="Pad"/> is on (the start-up self-check turns it on where it finds disagreement), such a convolution runs
/// with its weights zero-padded to 16 output channels and the logits narrowed back: no padded block is left to the
/// kernel, the padded channels' gradient is exactly zero, and the parameters (and checkpoints) keep their shapes.
/// Same values; costs the arithmetic oneDNN's padded block already did.
/// </summary>
public static class NarrowOutputs
{
    public static bool Pad { get; set; }

    public static Tensor Forward(Conv2d conv, Tensor x, long padding) =>
        Route(conv.weight!, conv.bias, x, (w, b) => nn.functional.conv2d(x, w, b, padding: new[] { padding, padding }), conv.call);

    public static Tensor Forward(Conv3d conv, Tensor x, long padding) =>
        Route(conv.weight!, conv.bias, x, (w, b) => nn.functional.conv3d(x, w, b, padding: new[] { padding, padding, padding }), conv.call);

    static Tensor Route(Tensor weight, Tensor? bias, Tensor x, Func<Tensor, Tensor?, Tensor> conv, Func<Tensor, Tensor> plain)
    {
        long oc = weight.shape[0];
        if (!Pad || oc >= 16) return plain(x);
        using var scope = NewDisposeScope();
        long extra = 16 - oc;
        var padShape = (long[])weight.shape.Clone(); padShape[0] = extra;
        var w = cat(new[] { weight, zeros(padShape, weight.dtype, device: weight.device) }, 0);
        if (MemoryLayout.IsChannelsLast(weight)) w = MemoryLayout.ToChannelsLast(w);
        var b = bias is null ? null : cat(new[] { bias, zeros(new[] { extra }, bias.dtype, device: bias.device) }, 0);
        var logits = conv(w, b).narrow(1, 0, oc);
        return (MemoryLayout.IsChannelsLast(x) ? MemoryLayout.ToChannelsLast(logits) : logits.contiguous()).MoveToOuterDisposeScope();
    }
}
