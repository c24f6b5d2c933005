"""MACs and FLOPs do not depend on the device: a corpus of small models, each profiled on the meta
device and with a real CPU forward, each count equal to its closed form.

The CPU runs other kernels than the meta device does in places (an LSTM is one mkldnn kernel per
layer, scaled dot-product attention one fused kernel, one_hot a scatter where meta compares with
arange, EmbeddingBag another op name); every such kernel is costed as the meta path is. Closed
forms follow the README's conventions: a MAC per multiply-accumulate (bias excluded), 2 FLOPs per
MAC, 1 per bias add, and the per-element costs of its table. A convolution's output size is
floor((n + 2p - d(k - 1) - 1) / s) + 1; a transposed convolution's MACs are its input positions x
taps x input channels x output channels per group.

Models get real CPU weights and real (seeded) CPU inputs; on meta the profiler converts both.
Data-dependent models run with ``device=None``, where meta cannot run them and the profiler falls
back to a CPU forward on the given input, and with ``device="cpu"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archprof

# Per-element prices from the README's conventions table.
SOFTMAX, SIGMOID, GELU, NORM, AFFINE, BN_INFERENCE = 5, 4, 5, 5, 2, 2
BILINEAR, BICUBIC, TRILINEAR, GRID_POINT = 7, 31, 15, 12
LSTM_CELL = 4 + 3 * SIGMOID + 2 + 3 + 1  # 4 gate sums, 3 sigmoids, 2 tanh, 3 multiplies, 1 add
GRU_CELL = 4 + 2 * SIGMOID + 1 + 2 + 1  # 4 adds, 2 sigmoids, 1 tanh, 2 multiplies, 1 subtraction
RNN_CELL = 2  # the sum of the two products and the nonlinearity


@dataclass(frozen=True)
class Case:
    name: str
    model: Callable[[], nn.Module]
    inputs: Callable[[], tuple]
    macs: int
    flops: int
    devices: tuple[str | None, ...] = ("meta", "cpu")


class Fn(nn.Module):
    """A module whose forward is a function of its inputs (and of its own layers, if any)."""

    def __init__(self, fn: Callable, **layers: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.layers = nn.ModuleDict(layers)

    def forward(self, *inputs):
        return self.fn(self.layers, *inputs)


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


def lstm_then_linear() -> nn.Module:
    return Fn(lambda m, x: m["fc"](m["lstm"](x)[0]), lstm=nn.LSTM(10, 12, 2, bidirectional=True), fc=nn.Linear(24, 3))


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021) of a (batch, seq, dim) tensor."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, dim, 2).float() / dim))

    def forward(self, x):
        t = torch.arange(x.shape[-2], device=x.device, dtype=x.dtype)
        angles = t[:, None] * self.inv_freq[None, :]
        emb = torch.cat((angles, angles), dim=-1)
        x1, x2 = x.chunk(2, dim=-1)
        return x * emb.cos() + torch.cat((-x2, x1), dim=-1) * emb.sin()


class SwinStyleBlock(nn.Module):
    """Shifted-window attention and MLP (Liu et al. 2021) on a (B, H, W, C) map, then Swin's head:
    norm, permute to (B, C, H, W), adaptive average pool (an as_strided_ on this layout), linear."""

    def __init__(self, dim: int = 8, heads: int = 2, window: int = 2, classes: int = 3) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.norm1, self.qkv, self.proj = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm, self.avgpool, self.head = nn.LayerNorm(dim), nn.AdaptiveAvgPool2d(1), nn.Linear(dim, classes)

    def forward(self, x):
        b, h, w, c = x.shape
        win, shift = self.window, self.window // 2
        shifted = torch.roll(self.norm1(x), shifts=(-shift, -shift), dims=(1, 2))
        windows = shifted.view(b, h // win, win, w // win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, win * win, c)
        n = windows.shape[0]
        qkv = self.qkv(windows).reshape(n, win * win, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(n, win * win, c))
        out = out.view(b, h // win, w // win, win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        x = x + torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        x = x + self.mlp(self.norm2(x))
        return self.head(torch.flatten(self.avgpool(self.norm(x).permute(0, 3, 1, 2)), 1))


class PerImageConv(nn.Module):
    """Detection-style: a list of images of different sizes, each convolved on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, images: list[torch.Tensor]):
        return torch.cat([self.conv(image[None]).flatten(1).mean(1) for image in images])


class BatchImages(nn.Module):
    """Detection-style: images padded into one batch at the largest size (as torchvision's
    GeneralizedRCNNTransform.batch_images), then one convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, images: list[torch.Tensor]):
        height, width = max(i.shape[-2] for i in images), max(i.shape[-1] for i in images)
        batch = images[0].new_zeros(len(images), 3, height, width)
        for slot, image in zip(batch, images, strict=True):
            slot[:, : image.shape[-2], : image.shape[-1]].copy_(image)
        return self.conv(batch)


class LinearIfPositive(nn.Module):
    """Data-dependent control flow: meta cannot tell whether the sum is positive."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 64)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else x


class PositiveRows(nn.Module):
    """A data-dependent shape: only the rows whose sum is positive reach the linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)

    def forward(self, x):
        return self.fc(x[x.sum(1) > 0])


class RepeatByMax(nn.Module):
    """``.item()``: the input's maximum decides how many times the layer runs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        for _ in range(int(x.max().item())):
            x = self.fc(x)
        return x


def alternating_sign_rows() -> torch.Tensor:
    x = torch.ones(8, 16)
    x[1::3] = -1.0  # rows 1, 4, 7 negative: 5 rows positive
    return x


CORPUS = [
    # --- convolutions: outputs x taps x input channels per group; + 1 FLOP per output if biased
    # 2 x 8 x 8 x 8 = 1024 outputs x (3 x 3 x 3) taps
    Case("conv2d", lambda: nn.Conv2d(3, 8, 3, padding=1), lambda: (randn(2, 3, 8, 8),), 1024 * 27, 2 * 1024 * 27 + 1024),
    # 6 x 5 x 5 = 150 outputs x (2 input channels per group x 9 taps), no bias
    Case("conv2d grouped", lambda: nn.Conv2d(4, 6, 3, groups=2, bias=False), lambda: (randn(1, 4, 7, 7),), 150 * 18, 2 * 150 * 18),
    # stride 2 pad 1 on 8: 4 x 4, 4 channels = 64 outputs x 9 taps x 1 channel
    Case("conv2d depthwise", lambda: nn.Conv2d(4, 4, 3, 2, 1, groups=4), lambda: (randn(1, 4, 8, 8),), 64 * 9, 2 * 64 * 9 + 64),
    # dilation 2: 9 - 2 x 2 = 5, so 3 x 5 x 5 = 75 outputs x 2 x 9 taps
    Case("conv2d dilated", lambda: nn.Conv2d(2, 3, 3, dilation=2), lambda: (randn(1, 2, 9, 9),), 75 * 18, 2 * 75 * 18 + 75),
    # 25 input positions x 3 in x 4 out x 9 taps; output (5 - 1) x 2 + 3 = 11, 4 x 121 biased outputs
    Case("conv transposed 2d", lambda: nn.ConvTranspose2d(3, 4, 3, 2), lambda: (randn(1, 3, 5, 5),), 2700, 2 * 2700 + 4 * 121),
    # length 10 - 2 = 8: 2 x 4 x 8 = 64 outputs x 3 x 3
    Case("conv1d", lambda: nn.Conv1d(3, 4, 3), lambda: (randn(2, 3, 10),), 64 * 9, 2 * 64 * 9 + 64),
    # same padding: 3 x 4 x 5 x 6 = 360 outputs x 2 x 27 taps
    Case("conv3d", lambda: nn.Conv3d(2, 3, 3, padding=1), lambda: (randn(1, 2, 4, 5, 6),), 360 * 54, 2 * 360 * 54 + 360),
    # --- attention: b x h x s_q x s_k x (d + d_v) MACs; scaling b x h x (s_q + s_k) x d, softmax 5 per score
    # q (1, 2, 4, 8), k, v (1, 2, 5, 8): 40 scores; on CPU the fused flash kernel
    Case(
        "sdpa", lambda: Fn(lambda m, q, k, v: F.scaled_dot_product_attention(q, k, v)),
        lambda: (randn(1, 2, 4, 8), randn(1, 2, 5, 8), randn(1, 2, 5, 8)), 40 * 16, 2 * 40 * 16 + 2 * 9 * 8 + SOFTMAX * 40,
    ),
    # a float mask adds 1 per score
    Case(
        "sdpa with mask", lambda: Fn(lambda m, q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)),
        lambda: (randn(1, 2, 4, 8), randn(1, 2, 5, 8), randn(1, 2, 5, 8), randn(4, 5)),
        40 * 16, 2 * 40 * 16 + 2 * 9 * 8 + SOFTMAX * 40 + 40,
    ),
    # causal, 4 x 4: 32 scores, the mask 1 per score
    Case(
        "sdpa causal", lambda: Fn(lambda m, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
        lambda: (randn(1, 2, 4, 8), randn(1, 2, 4, 8), randn(1, 2, 4, 8)), 32 * 16, 2 * 32 * 16 + 2 * 8 * 8 + SOFTMAX * 32 + 32,
    ),
    # MultiheadAttention(8, 2), seq 5, batch 2 (10 rows): q, k, v projections 3 x 10 x 64, scores
    # 2 x 2 x 5 x 5 = 100 x (4 + 4), out projection 10 x 64; biases 3 x 80 + 80. need_weights
    # (the default) scales q (80), multiplies explicitly, and averages the weights over heads (100).
    Case(
        "multihead attention", lambda: nn.MultiheadAttention(8, 2), lambda: (randn(5, 2, 8),) * 3,
        1920 + 800 + 640, 2 * 3360 + 320 + 80 + SOFTMAX * 100 + 100,
    ),
    # need_weights=False takes scaled dot-product attention (fused on CPU): scaling 2 x 2 x 10 x 4
    Case(
        "multihead attention without weights",
        lambda: Fn(lambda m, x: m["mha"](x, x, x, need_weights=False)[0], mha=nn.MultiheadAttention(8, 2)),
        lambda: (randn(5, 2, 8),), 3360, 2 * 3360 + 320 + 160 + SOFTMAX * 100,
    ),
    # attention as above (7700 FLOPs) + MLP 10 x 8 x 16 twice (biases 160 + 80, ReLU 160) + 2
    # residual adds (80 each) + 2 layer norms (80 x 7 each)
    Case(
        "transformer encoder layer", lambda: nn.TransformerEncoderLayer(8, 2, 16), lambda: (randn(5, 2, 8),),
        3360 + 2560, 7700 + 2 * 2560 + 240 + 160 + 160 + 2 * 80 * (NORM + AFFINE),
    ),
    # self-attention 3360 MACs (7700 FLOPs); cross-attention to 4 memory tokens: q 10 x 64, k and v
    # 2 x 8 x 64, 2 x 2 x 5 x 4 = 80 scores x 8, out 10 x 64 = 2944 MACs, biases 80 + 128 + 80,
    # scaling 2 x 2 x 9 x 4, softmax 5 x 80; MLP 2560 MACs (+ 240 biases, 160 ReLU); 3 adds, 3 norms
    Case(
        "transformer decoder layer", lambda: nn.TransformerDecoderLayer(8, 2, 16, batch_first=True),
        lambda: (randn(2, 5, 8), randn(2, 4, 8)), 3360 + 2944 + 2560,
        7700 + (2 * 2944 + 288 + 144 + SOFTMAX * 80) + (2 * 2560 + 240 + 160) + 3 * 80 + 3 * 80 * (NORM + AFFINE),
    ),
    # --- recurrent layers: every row (step x sequence) multiplies every weight matrix once and adds
    # every bias element once; each layer and direction runs its cell once per row and hidden unit.
    # The example: 18 rows; layer 1 (10 + 12) x 48, layer 2 (24 + 12) x 48, both directions;
    # biases 2 x 48 per layer and direction; Linear(24, 3) on 18 rows. CPU runs mkldnn_rnn_layer.
    Case(
        "lstm 2-layer bidirectional + linear", lstm_then_linear, lambda: (randn(6, 3, 10),),
        18 * 2 * (22 * 48 + 36 * 48) + 18 * 24 * 3,
        2 * 18 * 2 * (22 * 48 + 36 * 48) + 18 * 4 * 96 + 18 * 4 * 12 * LSTM_CELL + 2 * 18 * 72 + 18 * 3,
    ),
    # batch first, no bias: 18 rows x (10 + 12) x 48
    Case(
        "lstm batch_first without bias", lambda: nn.LSTM(10, 12, bias=False, batch_first=True), lambda: (randn(3, 6, 10),),
        18 * 22 * 48, 2 * 18 * 22 * 48 + 18 * 12 * LSTM_CELL,
    ),
    # projection to 5: w_ih 48 x 10, w_hh 48 x 5, w_hr 5 x 12 per row
    Case(
        "lstm with projection", lambda: nn.LSTM(10, 12, proj_size=5), lambda: (randn(6, 3, 10),),
        18 * (480 + 240 + 60), 2 * 18 * 780 + 18 * 96 + 18 * 12 * LSTM_CELL,
    ),
    # packed sequences of lengths 5, 3, 2: 10 rows x (4 + 6) x 24
    Case(
        "lstm on a packed sequence",
        lambda: Fn(
            lambda m, x: m["lstm"](nn.utils.rnn.pack_padded_sequence(x, [5, 3, 2], batch_first=True))[0].data,
            lstm=nn.LSTM(4, 6, batch_first=True),
        ),
        lambda: (randn(3, 5, 4),), 10 * 10 * 24, 2 * 10 * 10 * 24 + 10 * 48 + 10 * 6 * LSTM_CELL,
    ),
    # GRU: 3 gates of 12; layer 1 (10 + 12) x 36, layer 2 (24 + 12) x 36, both directions, 18 rows
    Case(
        "gru 2-layer bidirectional batch_first", lambda: nn.GRU(10, 12, 2, bidirectional=True, batch_first=True),
        lambda: (randn(3, 6, 10),), 18 * 2 * (22 * 36 + 36 * 36),
        2 * 18 * 2 * (22 * 36 + 36 * 36) + 18 * 4 * 72 + 18 * 4 * 12 * GRU_CELL,
    ),
    # RNN with ReLU: 18 rows x (10 + 12) x 12
    Case(
        "rnn relu", lambda: nn.RNN(10, 12, nonlinearity="relu"), lambda: (randn(6, 3, 10),),
        18 * 22 * 12, 2 * 18 * 22 * 12 + 18 * 24 + 18 * 12 * RNN_CELL,
    ),
    # one LSTM cell step on 3 rows
    Case("lstm cell", lambda: nn.LSTMCell(10, 12), lambda: (randn(3, 10),), 3 * 22 * 48, 2 * 3 * 22 * 48 + 3 * 96 + 3 * 12 * LSTM_CELL),
    # --- embeddings: gathers are free; a bag of k indices costs k - 1 adds (max: comparisons) per feature
    # 6 looked-up rows of 4 features into Linear(4, 5)
    Case(
        "embedding + linear", lambda: nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 5)),
        lambda: (torch.tensor([[1, 2, 3], [4, 5, 6]]),), 6 * 20, 2 * 6 * 20 + 6 * 5,
    ),
    # 2 bags of 3, 4 features: (6 - 2) x 4 adds
    Case("embedding bag sum", lambda: nn.EmbeddingBag(10, 4, mode="sum"), lambda: (torch.tensor([[1, 2, 3], [4, 5, 6]]),), 0, 16),
    # 7 indices in 3 bags (offsets 0, 3, 5): (7 - 3) x 4 adds + 3 x 4 divisions
    Case(
        "embedding bag mean with offsets", lambda: nn.EmbeddingBag(10, 4, mode="mean"),
        lambda: (torch.tensor([1, 2, 3, 4, 5, 6, 7]), torch.tensor([0, 3, 5])), 0, 16 + 12,
    ),
    # (6 - 2) x 4 comparisons
    Case("embedding bag max", lambda: nn.EmbeddingBag(10, 4, mode="max"), lambda: (torch.tensor([[1, 2, 3], [4, 5, 6]]),), 0, 16),
    # per-sample weights: + 6 x 4 multiplies
    Case(
        "embedding bag weighted",
        lambda: Fn(lambda m, i, w: m["bag"](i, per_sample_weights=w), bag=nn.EmbeddingBag(10, 4, mode="sum")),
        lambda: (torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.rand(2, 3)), 0, 16 + 24,
    ),
    # --- normalization: inference batch norm 2 per element; statistics 5 per element, + 2 if affine
    Case("batch norm", lambda: nn.BatchNorm2d(3), lambda: (randn(2, 3, 4, 4),), 0, BN_INFERENCE * 96),
    Case("group norm", lambda: nn.GroupNorm(2, 4), lambda: (randn(2, 4, 3, 3),), 0, (NORM + AFFINE) * 72),
    Case("layer norm", lambda: nn.LayerNorm(8), lambda: (randn(2, 5, 8),), 0, (NORM + AFFINE) * 80),
    Case("instance norm", lambda: nn.InstanceNorm2d(3), lambda: (randn(2, 3, 4, 4),), 0, NORM * 96),
    # --- resampling: per output element; 2 x 8 x 8 = 128 outputs at scale 2
    Case(
        "interpolate bilinear", lambda: Fn(lambda m, x: F.interpolate(x, scale_factor=2, mode="bilinear")),
        lambda: (randn(1, 2, 4, 4),), 0, BILINEAR * 128,
    ),
    Case(
        "interpolate bicubic", lambda: Fn(lambda m, x: F.interpolate(x, scale_factor=2, mode="bicubic")),
        lambda: (randn(1, 2, 4, 4),), 0, BICUBIC * 128,
    ),
    # nearest is indexing; then Conv2d(2, 2, 1) on 128 outputs
    Case(
        "interpolate nearest + conv", lambda: Fn(lambda m, x: m["conv"](F.interpolate(x, scale_factor=2)), conv=nn.Conv2d(2, 2, 1)),
        lambda: (randn(1, 2, 4, 4),), 128 * 2, 2 * 128 * 2 + 128,
    ),
    # 2 x (4 x 6 x 8) = 384 outputs
    Case(
        "interpolate trilinear", lambda: Fn(lambda m, x: F.interpolate(x, scale_factor=2, mode="trilinear")),
        lambda: (randn(1, 2, 2, 3, 4),), 0, TRILINEAR * 384,
    ),
    # pixel shuffle is free; Conv2d(2, 2, 1) on 2 x 6 x 6 = 72 outputs
    Case(
        "pixel shuffle + conv", lambda: nn.Sequential(nn.PixelShuffle(2), nn.Conv2d(2, 2, 1)),
        lambda: (randn(1, 8, 3, 3),), 72 * 2, 2 * 72 * 2 + 72,
    ),
    # 3 x 3 = 9 sampling points, 2 channels: 12 per point + 7 per output element
    Case(
        "grid sample", lambda: Fn(lambda m, x, grid: F.grid_sample(x, grid, align_corners=False)),
        lambda: (randn(1, 2, 4, 4), torch.rand(1, 3, 3, 2) * 2 - 1), 0, GRID_POINT * 9 + BILINEAR * 18,
    ),
    # --- padding is data movement; the three adds of 2 x 6 x 6 = 72 elements are the only arithmetic
    Case(
        "padding modes",
        lambda: Fn(
            lambda m, x: F.pad(x, (1, 1, 1, 1), mode="reflect") + F.pad(x, (1, 1, 1, 1), mode="replicate")
            + F.pad(x, (1, 1, 1, 1), mode="circular") + F.pad(x, (1, 1, 1, 1))
        ),
        lambda: (randn(1, 2, 4, 4),), 0, 3 * 72,
    ),
    Case(
        "padding 1d and 3d",
        lambda: Fn(
            lambda m, x, y: (F.pad(x, (1, 2), mode="reflect"), F.pad(x, (2, 1), mode="replicate"), F.pad(y, (1,) * 6, mode="reflect"),
                             F.pad(y, (1,) * 6, mode="replicate"), F.pad(y, (1,) * 6, mode="circular"))
        ),
        lambda: (randn(1, 2, 4), randn(1, 2, 3, 3, 3)), 0, 0,
    ),
    # shuffles are free; Conv2d(4, 4, 1) on 4 x 2 x 2 = 16 outputs
    Case(
        "channel shuffle + conv", lambda: nn.Sequential(nn.ChannelShuffle(2), nn.Conv2d(4, 4, 1)),
        lambda: (randn(1, 4, 2, 2),), 16 * 4, 2 * 16 * 4 + 16,
    ),
    # one_hot is data movement (meta compares with arange, CPU scatters); Linear(5, 3) on 8 rows
    Case(
        "one_hot + linear", lambda: Fn(lambda m, x: m["fc"](F.one_hot(x, 5).float()), fc=nn.Linear(5, 3)),
        lambda: (torch.tensor([0, 1, 2, 3, 4, 1, 2, 3]),), 8 * 15, 2 * 8 * 15 + 8 * 3,
    ),
    # --- trigonometric and integer arithmetic: 1 per element
    # seq 4, dim 8: angles 4 x 4 multiplies; cos and sin of 4 x 8; negate 4 x 4; 2 multiplies and an add of 4 x 8
    Case("rotary embedding", lambda: Rotary(8), lambda: (randn(1, 4, 8),), 0, 16 + 32 + 32 + 16 + 3 * 32),
    # angle of 6 points (atan2), then its sine and cosine, then a sum of the two: 4 x 6
    Case(
        "polar angle", lambda: Fn(lambda m, p: torch.sin(torch.atan2(p[:, 1], p[:, 0])) + torch.cos(torch.atan2(p[:, 1], p[:, 0]))),
        lambda: (randn(6, 2),), 0, 5 * 6,
    ),
    # hashing 6 ids: multiply, shift, xor, remainder (1 each per element); the embedding gather is free
    Case(
        "hashed embedding", lambda: Fn(lambda m, x: m["emb"](((x * 31) ^ (x >> 2)) % 10), emb=nn.Embedding(10, 4)),
        lambda: (torch.tensor([3, 17, 42, 8, 99, 5]),), 0, 4 * 6,
    ),
    # logsumexp over 5 of 3 x 5: 4 per input element (max, subtract, exp, sum; log and add-back per output)
    Case("logsumexp", lambda: Fn(lambda m, x: torch.logsumexp(x, dim=1)), lambda: (randn(3, 5),), 0, 4 * 15),
    # (1, 4, 4, 8), window 2, 2 heads of 4: 16 tokens in 4 windows. MACs: qkv 16 x 8 x 24, q k^T and
    # p v 4 x 2 x 4 x 4 x 4 each, proj 16 x 64, MLP 16 x 8 x 16 twice, head 8 x 3. FLOPs beyond:
    # 3 layer norms of 128 (7 each), biases 384 + 128 + 256 + 128 + 3, q scaling 128, softmax
    # 5 x 128 scores, 2 residual adds of 128, GELU 5 x 256, average pool 128 (roll and views free).
    Case(
        "swin-style shifted-window block", SwinStyleBlock, lambda: (randn(1, 4, 4, 8),),
        3072 + 512 + 512 + 1024 + 2048 + 2048 + 24,
        2 * 9240 + 3 * 128 * (NORM + AFFINE) + 899 + 128 + SOFTMAX * 128 + 2 * 128 + GELU * 256 + 128,
    ),
    # --- detection-style list inputs, passed as model(images)
    # Conv2d(3, 4, 3, padding=1) on 8 x 8 and 6 x 10: 4 x (64 + 60) outputs x 27 taps; biases; mean of each
    Case(
        "list of images", PerImageConv, lambda: ([randn(3, 8, 8), randn(3, 6, 10)],),
        4 * 124 * 27, 2 * 4 * 124 * 27 + 4 * 124 + 4 * 124,
    ),
    # padded into (2, 3, 8, 10); Conv2d(3, 2, 1): 2 x 2 x 80 outputs x 3
    Case(
        "list of images batched", BatchImages, lambda: ([randn(3, 8, 8), randn(3, 6, 10)],),
        320 * 3, 2 * 320 * 3 + 320,
    ),
    # --- data-dependent models: meta cannot run them (device=None falls back to CPU on the input)
    # ones: sum 64 - 1 adds, one comparison, then Linear(64, 64)
    Case(
        "linear only if the sum is positive", LinearIfPositive, lambda: (torch.ones(1, 64),),
        64 * 64, 63 + 1 + 2 * 64 * 64 + 64, devices=(None, "cpu"),
    ),
    # 8 row sums of 16 (15 adds each), 8 comparisons, 5 positive rows into Linear(16, 8)
    Case(
        "linear on the positive rows", PositiveRows, lambda: (alternating_sign_rows(),),
        5 * 16 * 8, 8 * 15 + 8 + 2 * 5 * 16 * 8 + 5 * 8, devices=(None, "cpu"),
    ),
    # max of 4 (3 comparisons) is 3: Linear(4, 4) three times
    Case(
        "layer repeated by .item()", RepeatByMax, lambda: (torch.full((1, 4), 3.0),),
        3 * 16, 3 + 3 * (2 * 16 + 4), devices=(None, "cpu"),
    ),
]


def test_the_corpus_covers_thirty_models():
    assert len(CORPUS) >= 30
    assert len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_meta_and_cpu_count_the_closed_form(case):
    torch.manual_seed(0)
    model, inputs = case.model(), case.inputs()
    for device in case.devices:
        p = archprof.profile(model, inputs=inputs, device=device, strict=True)
        assert (p.totals.macs, p.totals.flops) == (case.macs, case.flops), f"device={device}"
        if device is None:  # a data-dependent model: the meta attempt fell back to a real forward
            assert p.device == "cpu"
