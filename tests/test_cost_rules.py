"""Cost rules against closed forms, over random shapes (hypothesis).

Closed forms: a convolution's output size from its arithmetic
(floor((H + 2p - d(k-1) - 1) / s) + 1), one MAC per weight tap per output position (per input
position for a transposed conv); a linear layer's MACs per row are in * out; attention is two
batched products q k^T and p v.
"""

from __future__ import annotations

import math

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
