"""Cost rules against closed forms, over random shapes (hypothesis).

Closed forms: a convolution's output size from its arithmetic
(floor((H + 2p - d(k-1) - 1) / s) + 1), one MAC per weight tap per output position (per input
position for a transposed conv); a linear layer's MACs per row are in * out; attention is two
batched products q k^T and p v.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import archprof

FAST = settings(max_examples=60, deadline=None)


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 4))
    depthwise = draw(st.booleans())
    cin_per_group = 1 if depthwise else draw(st.integers(1, 4))
    cout_per_group = draw(st.integers(1, 3))
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers(1, 20))
    w = draw(st.integers(1, 20))
    ho, wo = (out_size(n, k[i], stride[i], padding[i], dilation[i]) for i, n in enumerate((h, w)))
    if ho < 1 or wo < 1:
        h, w = h + 20, w + 20
    return dict(
        n=draw(st.integers(1, 3)), groups=groups, cin=cin_per_group * groups, cout=cout_per_group * groups,
        k=k, stride=stride, padding=padding, dilation=dilation, h=h, w=w, bias=draw(st.booleans()),
    )


@FAST
@given(conv_cases())
def test_conv2d_macs_and_flops_match_the_closed_form(case):
    conv = nn.Conv2d(case["cin"], case["cout"], case["k"], case["stride"], case["padding"], case["dilation"],
                     case["groups"], bias=case["bias"], device="meta")
    p = archprof.profile(conv, (case["n"], case["cin"], case["h"], case["w"]))
    ho = out_size(case["h"], case["k"][0], case["stride"][0], case["padding"][0], case["dilation"][0])
    wo = out_size(case["w"], case["k"][1], case["stride"][1], case["padding"][1], case["dilation"][1])
    outputs = case["n"] * case["cout"] * ho * wo
    macs = outputs * (case["cin"] // case["groups"]) * case["k"][0] * case["k"][1]
    assert p.totals.macs == macs
    assert p.totals.flops == 2 * macs + (outputs if case["bias"] else 0)
    assert p.totals.activations == outputs
    kernel = f"{case['k'][0]}x{case['k'][1]}"
    if case["groups"] == 1:
        expected_type = f"conv {kernel}"
    elif case["groups"] == case["cin"]:
        expected_type = f"depthwise {kernel}"
    else:
        expected_type = f"grouped conv {kernel}"
    assert [r.name for r in p.group("type")] == [expected_type]


@FAST
@given(
    n=st.integers(1, 2), cin_g=st.integers(1, 3), cout_g=st.integers(1, 3), groups=st.integers(1, 3),
    k=st.integers(1, 4), stride=st.integers(1, 3), h=st.integers(1, 9), bias=st.booleans(),
)
def test_transposed_conv_counts_every_input_position_times_the_kernel(n, cin_g, cout_g, groups, k, stride, h, bias):
    # The scatter view: each input element meets every tap of its group's kernel (thop 0.1.1,
    # torchinfo and torchprofile over-count this 4.5x; peers.md item 6).
    cin, cout = cin_g * groups, cout_g * groups
    conv = nn.ConvTranspose2d(cin, cout, k, stride, groups=groups, bias=bias, device="meta")
    p = archprof.profile(conv, (n, cin, h, h + 1))
    macs = n * cin * h * (h + 1) * cout_g * k * k
    ho, wo = (h - 1) * stride + k, h * stride + k
    assert p.totals.macs == macs
    assert p.totals.flops == 2 * macs + (n * cout * ho * wo if bias else 0)


@FAST
@given(lead=st.lists(st.integers(1, 4), min_size=0, max_size=3), fin=st.integers(1, 16), fout=st.integers(1, 16), bias=st.booleans())
def test_linear_on_nd_input_counts_every_row(lead, fin, fout, bias):
    # torchinfo #77, ptflops #28/#121: Linear on N-D input undercounted by the peers.
    p = archprof.profile(nn.Linear(fin, fout, bias=bias, device="meta"), (*lead, fin))
    rows = math.prod(lead)
    assert p.totals.macs == rows * fin * fout
    assert p.totals.flops == 2 * rows * fin * fout + (rows * fout if bias else 0)


class MatMul(nn.Module):
    def forward(self, a, b):
        return a @ b


@FAST
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), m=st.integers(1, 8), k=st.integers(1, 8), n=st.integers(1, 8), broadcast_b=st.booleans())
def test_matmul_and_bmm_count_m_k_n_per_batch(batch, m, k, n, broadcast_b):
    a = torch.empty(*batch, m, k, device="meta")
    b = torch.empty(k, n, device="meta") if broadcast_b else torch.empty(*batch, k, n, device="meta")
    p = archprof.profile(MatMul(), inputs=(a, b))
    assert p.totals.macs == math.prod(batch) * m * k * n
    assert p.totals.flops == 2 * p.totals.macs


class Attention(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


@FAST
@given(b=st.integers(1, 2), h=st.integers(1, 3), sq=st.integers(1, 9), sk=st.integers(1, 9), d=st.integers(1, 8), dv=st.integers(1, 8))
def test_attention_counts_both_products_and_the_softmax(b, h, sq, sk, d, dv):
    q = torch.empty(b, h, sq, d, device="meta")
    k = torch.empty(b, h, sk, d, device="meta")
    v = torch.empty(b, h, sk, dv, device="meta")
    p = archprof.profile(Attention(), inputs=(q, k, v))
    scores = b * h * sq * sk
    macs = scores * (d + dv)
    assert p.totals.macs == macs
    # scale q and k (by sqrt(scale) each), softmax 5 per score
    assert p.totals.flops == 2 * macs + b * h * (sq + sk) * d + 5 * scores


class FusedCpuAttention(nn.Module):
    def forward(self, q, k, v):
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[0]


def test_fused_cpu_attention_costs_what_the_math_path_costs():
    # FlopCounterMode counts CPU SDPA as 0 (peers.md item 4); the fused kernel and the math
    # path that the meta device runs must agree.
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    fused = archprof.profile(FusedCpuAttention(), inputs=(q, k, v), device="cpu").totals
    math_path = archprof.profile(Attention(), inputs=(q, k, v), device="meta").totals
    assert (fused.macs, fused.flops) == (math_path.macs, math_path.flops) == (2 * 3 * 10 * 7 * 16, 13_440 + 2 * 3 * 17 * 8 + 5 * 420)


def test_resnet_stem_max_pool_counts_only_taps_inside_the_image():
    # 3x3/2 pad 1 on 112x112: per dimension the first window holds 2 real taps and the other
    # 55 hold 3, so 64 channels read 64 * 167^2 taps, less one per output for the max.
    p = archprof.profile(nn.MaxPool2d(3, 2, 1), (1, 64, 112, 112))
    assert p.totals.flops == 64 * 167 * 167 - 64 * 56 * 56 == 1_584_192


def test_adaptive_average_pool_reads_every_input_once():
    p = archprof.profile(nn.AdaptiveAvgPool2d((2, 3)), (1, 8, 6, 9))
    assert p.totals.flops == 8 * 6 * 9


@FAST
@given(size=st.integers(1, 40), k=st.integers(1, 6), s=st.integers(1, 4), d=st.integers(1, 3), c=st.integers(1, 3), pad=st.integers(0, 3))
def test_max_pool_counts_the_taps_inside_the_input_by_definition(size, k, s, d, c, pad):
    pad = min(pad, k // 2)
    out = (size + 2 * pad - d * (k - 1) - 1) // s + 1
    if out < 1:
        return
    p = archprof.profile(nn.MaxPool1d(k, s, pad, d), (1, c, size))
    taps = sum(1 for i in range(out) for j in range(k) if 0 <= i * s - pad + j * d < size)
    assert p.totals.flops == c * (taps - out)


def test_linear_on_3d_input_writes_its_output_once():
    # aten._unsafe_view carries no alias annotation; it is still a view, not a second write.
    p = archprof.profile(nn.Linear(8, 8, device="meta"), (1, 4, 8))
    assert p.totals.activations == 4 * 8


class Causal(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class FusedCausal(nn.Module):
    def forward(self, q, k, v):
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, True)[0]


def test_causal_attention_costs_the_same_fused_on_cpu_and_on_meta():
    q = torch.randn(2, 4, 16, 8)
    scores = 2 * 4 * 16 * 16
    expected = 2 * scores * 16 + 2 * 4 * 32 * 8 + 5 * scores + scores  # products, scaling, softmax, the mask
    for model, device in ((Causal(), "meta"), (Causal(), "cpu"), (FusedCausal(), "cpu")):
        assert archprof.profile(model, inputs=(q, q, q), device=device).totals.flops == expected


class RunningSum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


def test_cumulative_sum_costs_one_add_per_element():
    assert archprof.profile(RunningSum(), (3, 5)).totals.flops == 15


def test_transformer_layers_are_costed_on_cpu_as_on_meta():
    # In eval mode under no_grad, real tensors would take PyTorch's fused transformer fast path,
    # one op with no shapes to cost; the tracer turns it off.
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True).eval()
    cpu = archprof.profile(layer, (1, 10, 16), device="cpu")
    meta = archprof.profile(layer, (1, 10, 16), device="meta")
    assert cpu.uncounted == {} == meta.uncounted
    assert (cpu.totals.macs, cpu.totals.flops) == (meta.totals.macs, meta.totals.flops)
    # in_proj 10*16*48 + q k^T and p v 2*10*10*16 + out_proj 10*16*16 + the MLP 10*16*32*2
    assert cpu.totals.macs == 10 * 16 * 48 + 2 * 10 * 10 * 16 + 10 * 16 * 16 + 2 * 10 * 16 * 32
    assert torch.backends.mha.get_fastpath_enabled()  # restored after the trace


class InPlaceViews(nn.Module):
    def forward(self, x):
        y = x * 2
        y.transpose_(0, 1)
        y.unsqueeze_(0)
        y.squeeze_(0)
        y.t_()
        return y.as_strided_((y.numel(),), (1,))


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_in_place_views_are_free_and_write_nothing(device):
    # transpose_, unsqueeze_, squeeze_, t_, as_strided_ rewrite a tensor's metadata only: the one
    # write is the multiply's 3 x 5 output (torchvision's Swin ends in an as_strided_).
    p = archprof.profile(InPlaceViews(), inputs=(torch.randn(3, 5),), device=device, strict=True)
    assert (p.totals.flops, p.totals.activations) == (15, 15)


class Copies(nn.Module):
    def forward(self, x):
        return F.pad(x, (1, 2, 1, 2), mode="reflect"), F.pad(x, (1, 1, 1, 1), mode="replicate"), F.channel_shuffle(x, 2)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_padding_and_shuffles_are_free_copies_that_write_their_output(device):
    # (1, 4, 5, 5): reflect-padded 8 x 8, replicate-padded 7 x 7, the shuffle 5 x 5, 4 channels each
    p = archprof.profile(Copies(), inputs=(torch.randn(1, 4, 5, 5),), device=device, strict=True)
    assert (p.totals.flops, p.totals.activations) == (0, 4 * (64 + 49 + 25))


ONE_PER_ELEMENT = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "asin": torch.asin, "acos": torch.acos,
    "atan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh, "asinh": torch.asinh, "atanh": torch.atanh,
    "atan2": lambda x: torch.atan2(x, x), "log2": torch.log2, "log10": torch.log10, "log1p": torch.log1p,
    "expm1": torch.expm1, "exp2": torch.exp2, "sgn": torch.sgn,
    "remainder": lambda x: torch.remainder(x, 0.3), "fmod": lambda x: torch.fmod(x, 0.3),
    "floor_divide": lambda x: torch.floor_divide(x, 0.3),
}
INTEGER_ONE_PER_ELEMENT = {
    "bitwise_and": lambda i: i & 6, "bitwise_or": lambda i: i | 6, "bitwise_xor": lambda i: i ^ 6,
    "bitwise_not": lambda i: ~i, "left_shift": lambda i: i << 2, "right_shift": lambda i: i >> 1,
    "remainder": lambda i: i % 4, "floor_divide": lambda i: i // 4,
}


class Apply(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("name", sorted(ONE_PER_ELEMENT))
def test_trigonometric_and_special_functions_cost_one_per_element(name):
    x = torch.rand(3, 7) * 0.9
    for device in ("meta", "cpu"):
        assert archprof.profile(Apply(ONE_PER_ELEMENT[name]), inputs=(x,), device=device, strict=True).totals.flops == 21


@pytest.mark.parametrize("name", sorted(INTEGER_ONE_PER_ELEMENT))
def test_bitwise_and_integer_ops_cost_one_per_element(name):
    i = torch.arange(12).reshape(3, 4)
    for device in ("meta", "cpu"):
        assert archprof.profile(Apply(INTEGER_ONE_PER_ELEMENT[name]), inputs=(i,), device=device, strict=True).totals.flops == 12


@FAST
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), data=st.data())
def test_logsumexp_costs_four_per_input_element(shape, data):
    # per output over n inputs: max (n - 1), subtract (n), exp (n), sum (n - 1), log and the max
    # added back (2): 4n, whichever dimensions are reduced.
    dims = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    p = archprof.profile(Apply(lambda x: torch.logsumexp(x, dims)), inputs=(torch.empty(shape, device="meta"),))
    assert (p.totals.macs, p.totals.flops) == (0, 4 * math.prod(shape))


class Bag(nn.Module):
    def __init__(self, **options):
        super().__init__()
        self.bag = nn.EmbeddingBag(10, 3, **options)

    def forward(self, indices, offsets):
        return self.bag(indices, offsets)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_embedding_bag_counts_its_reduction_from_shapes_alone(device):
    # include_last_offset: offsets (0, 2, 5) close 2 bags over 5 indices, 3 features: (5 - 2) x 3
    # adds. The padding index (0) and its entries are counted like any other: meta cannot see them.
    indices, offsets = torch.tensor([0, 1, 2, 0, 4]), torch.tensor([0, 2, 5])
    for mode, flops in (("sum", 9), ("mean", 9 + 2 * 3), ("max", 9)):
        model = Bag(mode=mode, include_last_offset=True, padding_idx=0)
        p = archprof.profile(model, inputs=(indices, offsets), device=device, strict=True)
        assert (p.totals.flops, p.totals.activations) == (flops, 2 * 3), mode


RECURRENT = {"LSTM": (nn.LSTM, 4, 22), "GRU": (nn.GRU, 3, 16), "RNN": (nn.RNN, 1, 2)}


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(sorted(RECURRENT)), layers=st.integers(1, 3), bidirectional=st.booleans(), bias=st.booleans(),
    batch_first=st.booleans(), proj=st.integers(0, 3), seq=st.integers(1, 4), batch=st.integers(1, 3),
    fin=st.integers(1, 6), hidden=st.integers(4, 6),
)
def test_recurrent_layers_count_every_weight_once_per_row_on_every_device(
    kind, layers, bidirectional, bias, batch_first, proj, seq, batch, fin, hidden
):
    # Each of the seq x batch rows meets each weight matrix once (input-hidden, hidden-hidden, an
    # LSTM's projection), each bias element once (2 x gates x hidden per layer and direction), and
    # runs each layer's and direction's cell on every hidden unit: LSTM 22, GRU 16, RNN 2 FLOPs.
    cls, gates, cell = RECURRENT[kind]
    proj = proj if kind == "LSTM" and proj < hidden else 0
    options = dict(bidirectional=bidirectional, bias=bias, batch_first=batch_first)
    rnn = cls(fin, hidden, layers, proj_size=proj, **options) if proj else cls(fin, hidden, layers, **options)
    dirs, out = 2 if bidirectional else 1, proj or hidden
    rows = seq * batch
    per_row = 0
    for layer in range(layers):
        in_size = fin if layer == 0 else dirs * out
        per_row += dirs * (gates * hidden * (in_size + out) + (out * hidden if proj else 0))
    macs = rows * per_row
    flops = 2 * macs + (rows * layers * dirs * 2 * gates * hidden if bias else 0) + rows * layers * dirs * hidden * cell
    x = torch.randn((batch, seq, fin) if batch_first else (seq, batch, fin))
    meta = archprof.profile(rnn, inputs=(x,), device="meta", strict=True)
    cpu = archprof.profile(rnn, inputs=(x,), device="cpu", strict=True)
    assert (meta.totals.macs, meta.totals.flops) == (cpu.totals.macs, cpu.totals.flops) == (macs, flops)
    # Costed whole, as one op per call, whose outputs (the sequence and the final states) are
    # activations on every device, as are the zero initial states the module creates.
    states = layers * dirs * batch * (out + (hidden if kind == "LSTM" else 0))
    assert meta.totals.activations == cpu.totals.activations == rows * dirs * out + 2 * states
    assert [op.op for op in cpu.ops if op.layer_type == "recurrent"] == [f"aten.{'rnn_tanh' if kind == 'RNN' else kind.lower()}"]


class OneHot(nn.Module):
    def forward(self, labels):
        return F.one_hot(labels, 6)


def test_one_hot_is_data_movement_on_every_device():
    # meta compares each label with each class (eq against arange), CPU scatters into zeros; as
    # one op both write the 4 x 6 output and compute nothing.
    labels = torch.tensor([0, 5, 2, 2])
    for device in ("meta", "cpu"):
        p = archprof.profile(OneHot(), inputs=(labels,), device=device, strict=True)
        assert (p.totals.flops, p.totals.activations, [op.op for op in p.ops]) == (0, 24, ["aten.one_hot"])


def _torchvision():
    try:
        import torchvision
    except Exception:  # absent, or built for another torch
        pytest.skip("torchvision is not importable (the CI build of torch has none)")
    return torchvision


class RoIAlign(nn.Module):
    def __init__(self, sampling_ratio):
        super().__init__()
        self.sampling_ratio = sampling_ratio

    def forward(self, features, boxes):
        from torchvision.ops import roi_align

        return roi_align(features, boxes, output_size=2, spatial_scale=0.5, sampling_ratio=self.sampling_ratio)


def test_roi_align_counts_its_bilinear_samples_and_bin_averages():
    # Per sampling point 12 (coordinates and corner weights, shared by the channels, as
    # grid_sample), per point and channel 7 (the bilinear sample) + 1 (the bin's average).
    _torchvision()
    features = torch.randn(1, 3, 16, 16)
    boxes = torch.tensor([[0, 0.0, 0.0, 16.0, 16.0], [0, 4.0, 8.0, 20.0, 14.0]])  # at scale 0.5: 8 x 8, 8 x 3
    # sampling_ratio 2: 2 x 2 points per bin, 4 bins, 2 boxes
    points = 2 * 4 * 4
    for device in ("meta", "cpu"):
        p = archprof.profile(RoIAlign(2), inputs=(features, boxes), device=device, strict=True)
        assert p.totals.flops == 12 * points + 8 * 3 * points
    # adaptive (-1): ceil(8 / 2) x ceil(8 / 2) = 16 points per bin in the first box, ceil(3 / 2) x
    # ceil(8 / 2) = 8 in the second; the boxes decide, so meta cannot count it and says so.
    points = (16 + 8) * 4
    assert archprof.profile(RoIAlign(-1), inputs=(features, boxes), device="cpu", strict=True).totals.flops == 12 * points + 8 * 3 * points
    assert archprof.profile(RoIAlign(-1), inputs=(features, boxes), device="meta").uncounted == {"torchvision.roi_align": 1}


# --- sorting, selection, searching and indexing (detectors' post-processing) -------------------


class SortAndSelect(nn.Module):
    def forward(self, x, index, sequence):
        torch.sort(x, dim=1)  # 6 rows of 16: 96 x ceil(log2 16) = 384 comparisons
        torch.topk(x, 4, dim=1)  # a heap of 4 over 96 values: 96 x log2 4 = 192
        torch.nonzero(x > 0)  # 96 comparisons (gt) + 96 scanned, whatever the data
        torch.unique(x)  # sort 96 x ceil(log2 96) = 672, then 96 neighbour comparisons
        torch.searchsorted(sequence, x)  # 96 queries x ceil(log2 8) = 288
        torch.bucketize(x, sequence[0])  # 96 x 3 = 288
        torch.zeros(5, 16).scatter_add(0, index, x)  # one add per index entry: 96
        torch.zeros(5, 16).index_add(0, torch.tensor([0, 1, 2]), x[:3])  # 48 adds
        x.median(dim=1)  # quickselect: 96
        return x


SORT_AND_SELECT_FLOPS = 384 + 192 + 96 + 96 + 672 + 96 + 288 + 288 + 96 + 48 + 96


def test_sorting_selection_and_search_cost_their_comparisons_whatever_the_data():
    inputs = (torch.randn(6, 16), torch.randint(0, 5, (6, 16)), torch.sort(torch.randn(6, 8))[0])
    p = archprof.profile(SortAndSelect(), inputs=inputs, device="cpu", strict=True)
    assert p.totals.flops == SORT_AND_SELECT_FLOPS
    negated = (-inputs[0].abs(), *inputs[1:])  # no element above 0: nonzero finds nothing, costs the same
    assert archprof.profile(SortAndSelect(), inputs=negated, device="cpu").totals.flops == SORT_AND_SELECT_FLOPS


# --- matrix-vector forms, gated and shrinking activations, losses -------------------------------


class MoreForms(nn.Module):
    def forward(self, x, y, logits, v, m, target):
        torch.addmv(v, m, v)  # 6 x 6 = 36 MACs, + 6 adds: 78 FLOPs
        torch.addr(m, v, v)  # outer product into m: 36 MACs, 72 FLOPs
        torch.addbmm(m, x, y)  # 3 x (6 x 6 x 6) = 648 MACs, + 36 adds: 1,332 FLOPs
        F.glu(x, -1)  # 54 outputs x 5 = 270
        F.celu(x)  # 108 x 5 = 540
        F.hardshrink(x)  # 108 x 2 = 216
        F.mse_loss(x, y)  # 108 x 2 + 108 (mean) = 324
        F.nll_loss(logits, target)  # 4 gathers + 4 adds = 8
        F.smooth_l1_loss(x, y)  # 108 x 5 + 108 = 648
        F.binary_cross_entropy_with_logits(x, y)  # 108 x 7 + 108 = 864
        return x


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_matrix_vector_forms_gates_shrinks_and_losses_cost_their_closed_forms(device):
    inputs = (torch.randn(3, 6, 6), torch.randn(3, 6, 6), torch.randn(4, 10), torch.randn(6), torch.randn(6, 6),
              torch.zeros(4, dtype=torch.long))
    p = archprof.profile(MoreForms(), inputs=inputs, device=device, strict=True)
    assert {op.layer_type for op in p.ops if "loss" in op.op} == {"loss"}
    assert p.totals.macs == 36 + 36 + 648
    assert p.totals.flops == 78 + 72 + 1332 + 270 + 540 + 216 + 324 + 8 + 648 + 864


# --- batched and vector products, norms, inference batch norm, indexed accumulation ------------


class ProductsAndNorms(nn.Module):
    def forward(self, c, a, b, m, v, x, z, index):
        torch.baddbmm(c, a, b)  # 2 x (3 x 4 x 5) = 120 MACs; 240 + one add per output (30) = 270 FLOPs
        torch.mv(m, v)  # 5 x 4 = 20 MACs, 40 FLOPs
        torch.dot(v, v)  # 4 MACs, 8 FLOPs
        torch.vdot(v, v)  # 4 MACs, 8 FLOPs
        torch.linalg.vector_norm(m)  # square and accumulate: 2 x 20 = 40
        ones = torch.ones(3, device=x.device)
        # the inference form export and compile lower batch norm to: one multiply, one add per element
        torch.ops.aten._native_batch_norm_legit_no_training(x, ones, ones, ones, ones, 0.1, 1e-5)  # 2 x 96 = 192
        z.index_put((index,), torch.ones(2, 4, device=x.device), accumulate=True)  # one add per value: 8
        z.index_put((index,), torch.ones(2, 4, device=x.device))  # a copy: 0
        return c


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_batched_and_vector_products_norms_inference_batch_norm_and_index_put_cost_their_closed_forms(device):
    inputs = (torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5), torch.randn(5, 4), torch.randn(4),
              torch.randn(2, 3, 4, 4), torch.zeros(6, 4), torch.tensor([1, 3]))
    p = archprof.profile(ProductsAndNorms(), inputs=inputs, device=device, strict=True)
    costed = [(op.op, op.macs, op.flops, op.layer_type) for op in p.ops if op.macs or op.flops or "index_put" in op.op]
    assert costed == [
        ("aten.baddbmm", 120, 270, "matmul"), ("aten.mv", 20, 40, "matmul"), ("aten.dot", 4, 8, "matmul"),
        ("aten.vdot", 4, 8, "matmul"), ("aten.linalg_vector_norm", 0, 40, "reduction"),
        ("aten._native_batch_norm_legit_no_training", 0, 192, "normalization"),
        ("aten.index_put", 0, 8, "data movement"), ("aten.index_put", 0, 0, "data movement"),
    ]
    # the inference batch norm's saved statistics are not activations: its output alone is written
    assert next(op.activations for op in p.ops if op.op == "aten._native_batch_norm_legit_no_training") == 96


class Accumulate(nn.Module):
    def forward(self, z, index, mask):
        z.index_put((index,), torch.tensor(1.0, device=z.device), accumulate=True)  # rows 1, 3: 2 x 4 = 8
        z.index_put((index,), torch.ones(4, device=z.device), accumulate=True)  # a row broadcast to both: 8
        torch.ops.aten.index_put(z, [None, index], torch.ones(6, 1, device=z.device), True)  # columns 1, 3: 6 x 2 = 12
        z.index_put((index[:, None], index[None, :]), torch.ones(2, 2, device=z.device), accumulate=True)  # 2 x 2 = 4
        z.index_put((mask,), torch.ones(3, 4, device=z.device), accumulate=True)  # a mask: the values' 12
        z.index_put((mask,), torch.tensor(1.0, device=z.device), accumulate=True)  # a mask's count is data
        z[:2, 0].index_put((mask[2:4],), torch.ones(2, device=z.device), accumulate=True)  # the values' 2
        return z


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_an_accumulating_index_put_adds_once_per_element_of_the_indexed_region(device):
    mask = torch.tensor([True, False, True, True, False, False])  # 3 rows; mask[2:4] 2
    p = archprof.profile(Accumulate(), inputs=(torch.zeros(6, 4), torch.tensor([1, 3]), mask), device=device)
    assert [(op.macs, op.flops) for op in p.ops if op.op == "aten.index_put"] == [
        (0, 8), (0, 8), (0, 12), (0, 4), (0, 12), (0, 0), (0, 2)]
    assert p.uncounted == {"aten.index_put": 1}  # the mask with one broadcast value: reported, not guessed


# torchvision's roi_align schema (torchvision/csrc/ops/roi_align.cpp), defined here so that the rule
# is tested where torchvision is absent (CI): the rule reads the call by these names alone.
_ROI_LIBRARIES: list[torch.library.Library] = []  # a definition lives as long as its library


def _roi_align_schema(namespace: str = "archprof_roi_test") -> torch._ops.OpOverload:
    try:  # defined once per process, however often this module is imported
        return getattr(torch.ops, namespace).roi_align.default
    except (AttributeError, RuntimeError):
        _ROI_LIBRARIES.append(torch.library.Library(namespace, "FRAGMENT"))
        _ROI_LIBRARIES[-1].define("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
                                  "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")
        return getattr(torch.ops, namespace).roi_align.default


def _roi_cost(features, boxes, scale, sampling_ratio, aligned, pooled=(2, 3)):
    from archprof.tracing.rules import Call, roi_align_cost

    out = torch.empty(boxes.shape[0], features.shape[1], *pooled, device=features.device)
    args = (features, boxes, scale, *pooled, sampling_ratio, aligned)
    return roi_align_cost(Call(_roi_align_schema(), args, {}, out))


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("ratio", [1, 3])
def test_roi_align_rule_counts_a_fixed_sampling_grid_from_shapes(device, ratio):
    # sampling_ratio r: r x r points per bin, 2 x 3 bins, 4 boxes; per point 12 (coordinates and
    # corner weights) and per point and channel 8 (bilinear sample 7, average 1)
    features, boxes = torch.empty(1, 5, 16, 16, device=device), torch.zeros(4, 5, device=device)
    points = 4 * ratio * ratio * 2 * 3
    assert _roi_cost(features, boxes, 0.5, ratio, False) == archprof.Cost(0, 12 * points + 8 * 5 * points)


def test_roi_align_rule_sizes_an_adaptive_grid_from_the_boxes():
    # sampling_ratio 0: ceil(box height / 2) x ceil(box width / 3) points per bin, 2 x 3 bins per
    # box; a box is at least 1 x 1 pixel when not aligned, and may be empty when aligned
    features = torch.empty(1, 5, 32, 32)
    boxes = torch.tensor([[0, 0.0, 0.0, 24.0, 16.0],  # at scale 0.5: 12 wide, 8 high: 4 x 4 = 16
                          [0, 4.0, 4.0, 4.0, 4.0],  # empty: 1 x 1 not aligned, none aligned
                          [0, 10.0, 10.0, 2.0, 2.0],  # inverted: as the empty one
                          [0, 2.0, 6.0, 2.0, 14.0],  # no width, 4 high: 2 x 1 not aligned, none aligned
                          [0, 0.0, 6.0, 20.0, 6.0]])  # 10 wide, no height: 1 x 4 not aligned, none aligned
    for aligned, per_bin in ((False, 16 + 1 + 1 + 2 + 4), (True, 16)):
        points = per_bin * 2 * 3
        assert _roi_cost(features, boxes, 0.5, 0, aligned) == archprof.Cost(0, 12 * points + 8 * 5 * points)
    # at scale 0.25 the first box is 6 x 4: ceil(4 / 2) x ceil(6 / 3) = 4 per bin
    assert _roi_cost(features, boxes[:1], 0.25, -1, True) == archprof.Cost(0, (12 + 40) * 4 * 6)
    # one bin: the empty box, not aligned, is exactly one pixel, one point
    assert _roi_cost(features, boxes[1:2], 0.5, 0, False, pooled=(1, 1)) == archprof.Cost(0, 12 + 40)


def test_roi_align_rule_leaves_an_adaptive_grid_on_meta_uncounted():
    # the grid depends on the boxes' values, which meta tensors do not hold
    assert _roi_cost(torch.empty(1, 5, 32, 32, device="meta"), torch.empty(3, 5, device="meta"), 0.5, 0, True) is None


# --- the MAC convention: multiply-accumulates of products only, and every count an integer ------


class NoProducts(nn.Module):
    """Sorting, searching, indexing, sampling, statistics and losses: FLOPs, never MACs."""

    def forward(self, x, seq, index, grid, labels, target, b1, b2, m):
        torch.msort(x)  # along dim 0, 4 long: 64 x ceil(log2 4) = 128
        torch.topk(x, 2, dim=1)  # a heap of 2: 64 x max(log2 2, 1) = 64
        torch.searchsorted(seq, x)  # a 1-D sequence of 8: 64 x 3 = 192
        x.median(dim=1)  # quickselect: 64
        torch.unique(x)  # 64 x ceil(log2 64) + 64 = 448
        torch.nonzero(x)  # one scan of 64
        torch.bucketize(x, seq)  # 64 x 3 = 192
        torch.zeros(5, 16, device=x.device).scatter_add(0, index, x)  # 64
        torch.zeros(5, 16, device=x.device).index_add(0, index[0, :3], x[:3])  # 48
        x.var(dim=1)  # 4 per input: 256
        F.grid_sample(x.view(1, 1, 4, 16), grid, mode="nearest", align_corners=False)  # 6 per point: 6 x 6 = 36
        F.one_hot(labels, 6)  # data movement: 0
        F.nll_loss(x, target, reduction="none")  # one gather per target, nothing reduced: 4
        torch.addbmm(m, b1, b2)  # 2 x (3 x 4 x 5) = 120 MACs; 240 + 15 adds = 255
        return x


NO_PRODUCTS_FLOPS = 128 + 64 + 192 + 64 + 448 + 64 + 192 + 64 + 48 + 256 + 36 + 0 + 4 + 255


def test_only_products_count_macs_and_every_count_is_an_integer():
    # on the CPU: unique and nonzero have no meta kernel (their output size is data)
    inputs = (torch.randn(4, 16), torch.arange(8.0), torch.randint(0, 5, (4, 16)), torch.zeros(1, 2, 3, 2),
              torch.tensor([0, 5, 2]), torch.tensor([0, 3, 15, 2]), torch.randn(2, 3, 4), torch.randn(2, 4, 5),
              torch.randn(3, 5))
    p = archprof.profile(NoProducts(), inputs=inputs, device="cpu", strict=True)
    assert (p.totals.macs, p.totals.flops) == (120, NO_PRODUCTS_FLOPS)
    assert [op.op for op in p.ops if op.macs] == ["aten.addbmm"]
    assert all(type(op.macs) is int and type(op.flops) is int for op in p.ops)


class Bags(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(10, 3, mode="sum")

    def forward(self, indices, offsets, weights):
        return self.bag(indices, offsets, per_sample_weights=weights)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_embedding_bag_weights_cost_one_multiply_per_gathered_element_and_single_index_bags_no_merge(device):
    # 5 indices in 2 bags of 3 features: (5 - 2) x 3 merges + 5 x 3 weight multiplies = 24
    p = archprof.profile(Bags(), inputs=(torch.tensor([0, 1, 2, 0, 4]), torch.tensor([0, 2]), torch.rand(5)),
                         device=device, strict=True)
    assert (p.totals.macs, p.totals.flops) == (0, 9 + 15)
    # 3 indices in 3 bags: nothing to merge, 3 x 3 weight multiplies
    p = archprof.profile(Bags(), inputs=(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.rand(3)),
                         device=device, strict=True)
    assert (p.totals.macs, p.totals.flops) == (0, 9)


# --- fused attention kernels' masks, through their schemas (the GPU kernels cannot run here) --------


def _attention_cost(overload, **named):
    from archprof.tracing.rules import Call, fused_attention_cost

    q, k, v = (torch.empty(2, 3, n, 8, device="meta") for n in (10, 7, 7))
    return fused_attention_cost(Call(overload, (q, k, v), named, torch.empty(2, 3, 10, 8, device="meta")))


# 2 x 3 heads, 10 queries, 7 keys, 8 features: q k^T and p v 6 x 10 x 7 x 16 = 6,720 MACs; 13,440
# FLOPs, the scaling of q and k 6 x 17 x 8 = 816, the softmax 5 x 420; a mask adds one per score
ATTENTION_MACS, ATTENTION_FLOPS, SCORES = 6_720, 13_440 + 816 + 5 * 420, 420


def test_the_gpu_efficient_kernel_adds_its_attn_bias_once_per_score():
    efficient = torch.ops.aten._scaled_dot_product_efficient_attention.default
    bias = torch.empty(2, 3, 10, 7, device="meta")
    assert _attention_cost(efficient, attn_bias=None, compute_log_sumexp=False) == (ATTENTION_MACS, ATTENTION_FLOPS)
    assert _attention_cost(efficient, attn_bias=bias, compute_log_sumexp=False) == (ATTENTION_MACS, ATTENTION_FLOPS + SCORES)


def test_the_cpu_flash_kernel_adds_its_attn_mask_once_per_score():
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default
    mask = torch.empty(2, 3, 10, 7, device="meta")
    assert _attention_cost(flash) == (ATTENTION_MACS, ATTENTION_FLOPS)
    assert _attention_cost(flash, attn_mask=mask) == (ATTENTION_MACS, ATTENTION_FLOPS + SCORES)


# --- recurrent layers over a packed batch ----------------------------------------------------------


class PackedLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 5)

    def forward(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        return self.lstm(packed)[0].data


def test_a_packed_batch_runs_each_cell_once_per_real_step():
    # lengths 3 and 2: 5 rows, not the padded 6. Per row the 4 x 5 x 4 input and 4 x 5 x 5 hidden
    # weights (180 MACs), their two bias vectors (40 adds), the cell's 22 FLOPs per hidden unit.
    x, lengths = torch.randn(3, 2, 4), torch.tensor([3, 2])
    p = archprof.profile(PackedLSTM(), inputs=(x, lengths), device="cpu", strict=True)
    lstm = next(op for op in p.ops if op.op == "aten.lstm")
    assert (lstm.macs, lstm.flops) == (5 * 180, 2 * 5 * 180 + 5 * 40 + 5 * 5 * 22)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_log_sigmoid_costs_three_per_element_of_its_output_alone(device):
    # log_sigmoid_forward also returns a buffer for its backward (the input's size on the CPU, empty
    # on meta): an auxiliary output, neither costed nor an activation
    p = archprof.profile(Apply(F.logsigmoid), (2, 5), device=device, strict=True)
    assert (p.totals.flops, p.totals.activations) == (3 * 10, 10)


class PoolForms(nn.Module):
    def forward(self, x):
        F.max_pool2d(x, (3,), (2,))  # one int for both dims, as 3 and 2: 3 x 3 windows of 9 taps, 18 outputs
        F.avg_pool2d(x, 2)  # no stride: the schema's [] is the kernel; 32 windows of 4
        F.max_pool2d(x[0], 2)  # unbatched (C, H, W): 32 windows of 4
        F.max_pool1d(x[0], 3, 2)  # (N, C, L) = 2 x 8 x 8: 48 windows of 3
        F.avg_pool2d(x, (4, 2))  # 2 x 4 windows of 8 per channel: 16 windows
        return x


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_pools_read_one_int_for_every_dim_the_kernel_as_default_stride_and_unbatched_input(device):
    p = archprof.profile(PoolForms(), (1, 2, 8, 8), device=device, strict=True)
    # max: taps - 1 comparisons per output; average: taps - 1 adds and a division per output
    assert [op.flops for op in p.ops if op.layer_type == "pooling"] == [162 - 18, 128, 128 - 32, 144 - 48, 128]
    # a max pool's indices are kept for backward, not an activation: its output alone is written
    assert [op.activations for op in p.ops if op.layer_type == "pooling"] == [18, 32, 32, 48, 16]


def test_torchvisions_roi_align_gets_its_rule_once_torchvision_is_imported(monkeypatch):
    import sys
    import types

    from archprof.tracing import rules

    try:
        import torchvision as module  # its operators, roi_align among them
    except Exception:  # absent (CI): torchvision's namespace and schema, and a module by its name
        _roi_align_schema("torchvision")
        module = types.ModuleType("torchvision")
    packet = torch.ops.torchvision.roi_align
    monkeypatch.setattr(rules, "COST_RULES", {op: rule for op, rule in rules.COST_RULES.items() if op is not packet})
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    rules.register_library_rules()  # not imported: nothing to register
    assert packet not in rules.COST_RULES
    monkeypatch.setitem(sys.modules, "torchvision", module)
    rules.register_library_rules()
    rules.register_library_rules()  # before every trace: registered once
    assert (rules.COST_RULES[packet].cost, rules.COST_RULES[packet].layer_type) == (rules.roi_align_cost, "pooling")
