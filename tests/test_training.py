"""A training step (``mode="train"``): backward costs from closed forms, frozen layers honoured,
saved activations counted by hand, and the same numbers on meta and on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archprof
from archprof.analysis.training import OPTIMIZER_STATES, PRECISIONS
from archprof.tracing.rules import norm_backward_flops


def _train(model: nn.Module, shape, **kw) -> archprof.Profile:
    return archprof.profile(model, shape, mode="train", **kw)


def _layer(p: archprof.Profile, name: str) -> archprof.Row:
    return next(r for r in p.group("layer") if r.name == name)


# Closed forms: a convolution's forward takes N * C_out * H_out * W_out * C_in * k * k MACs; its
# weight gradient and its input gradient each take as many again, and a linear layer's the same
# with batch * in * out.
CONV_MACS = 2 * 8 * 16 * 16 * 3 * 3 * 3  # Conv2d(3, 8, 3, padding=1) on 2x3x16x16
CONV2_MACS = 2 * 8 * 16 * 16 * 8 * 3 * 3  # Conv2d(8, 8, 3, padding=1) after it


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_conv_backward_macs_are_weight_gradient_plus_input_gradient_where_needed(device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1))
    p = _train(model, (2, 3, 16, 16), device=device)
    first, second = _layer(p, "0"), _layer(p, "1")
    # The first convolution's input is the image: autograd computes no gradient for it.
    assert first.backward_macs == CONV_MACS
    assert second.backward_macs == 2 * CONV2_MACS
    assert first.macs == 2 * CONV_MACS and second.macs == 3 * CONV2_MACS
    # Bias gradients: the output gradient summed over batch and positions, 2*16*16 - 1 adds per channel.
    bias_flops = 8 * (2 * 16 * 16 - 1)
    assert first.backward_flops == 2 * CONV_MACS + bias_flops
    assert second.backward_flops == 2 * 2 * CONV2_MACS + bias_flops


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_linear_backward_and_frozen_layers_drop_exactly_their_gradients(device):
    def net(freeze_first: bool) -> nn.Module:
        model = nn.Sequential(nn.Linear(16, 32, bias=False), nn.Linear(32, 4, bias=False))
        model[0].weight.requires_grad_(not freeze_first)
        return model

    # forward: 5*16*32 = 2560 and 5*32*4 = 640 MACs
    trained = _train(net(False), (5, 16), device=device)
    assert (_layer(trained, "0").backward_macs, _layer(trained, "1").backward_macs) == (2560, 2 * 640)
    # Freezing the first layer drops its weight gradient, and with it the second layer's input
    # gradient, which nothing upstream needs any more.
    frozen = _train(net(True), (5, 16), device=device)
    assert (_layer(frozen, "0").backward_macs, _layer(frozen, "1").backward_macs) == (0, 640)
    assert frozen.totals.trainable_params == 32 * 4


def test_batch_norm_backward_follows_the_documented_per_element_count():
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    p = _train(model, (2, 3, 8, 8))
    elements = 2 * 4 * 8 * 8
    # batch statistics, input, weight and bias gradients: x_hat 2, sum(dy) 1, sum(dy x_hat) 2, input 4
    assert _layer(p, "1").backward_flops == 9 * elements == norm_backward_flops(elements, (True, True, True), True)
    # its gradients of the 4 weights and 4 biases are not activations: the input's gradient alone is
    backward = next(op for op in p.ops if op.op == "aten.native_batch_norm_backward")
    assert (backward.layer_type, backward.activations) == ("normalization", elements)
    # forward in training mode: statistics (5) and affine (2) per element, plus the step counter's add
    assert _layer(p, "1").flops - _layer(p, "1").backward_flops == 7 * elements + 1


def test_resnet50_training_macs_equal_flop_counter_modes_forward_plus_backward():
    """torch's FlopCounterMode counts convolution, convolution_backward, addmm and mm (2 FLOPs per
    MAC) and nothing else; on ResNet-50 those are all the ops with MACs, so the totals agree."""
    model = archprof.build_model("resnet50")
    p = _train(model, (1, 3, 224, 224))
    meta = archprof.build_model("resnet50").to("meta").train()
    with FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, 3, 224, 224, device="meta")).sum().backward()
    assert p.totals.macs * 2 == counter.get_total_flops() == 24_299_077_632
    # ResNet-50's forward (torchvision: 4.09 GFLOPS) is 4,089,184,256 MACs; the backward is twice
    # that less the first convolution's input gradient (3*64*7*7*112*112 = 118,013,952 MACs).
    assert p.totals.forward_macs == 4_089_184_256
    assert p.totals.backward_macs == 2 * 4_089_184_256 - 118_013_952


def test_frozen_resnet_stages_drop_their_weight_and_input_gradients():
    """freeze_at=2 (the seed's FREEZE_CONV_BODY_AT) freezes the stem and conv2_x: their layers
    compute no gradient at all, since nothing before them trains, and the two layers that read
    conv2_x's output (conv3_x's first 1x1 and its downsample) need no input gradient either."""
    free = _train(archprof.build_model("resnet50"), (1, 3, 224, 224))
    frozen = _train(archprof.build_model("resnet50", freeze_at=2), (1, 3, 224, 224))
    inference = archprof.profile(archprof.build_model("resnet50"))
    forward = {r.name: r.macs for r in inference.group("stage")}
    layer = {r.name: r.macs for r in inference.group("layer")}
    stage = {r.name: r for r in frozen.group("stage")}
    assert stage["stem"].backward_macs == stage["conv2_x"].backward_macs == 0
    # stem: only its weight gradient was computed before (the image needs none); conv2_x: both.
    readers = layer["layer2.0.conv1"] + layer["layer2.0.downsample.0"]
    assert readers == 2 * 256 * 128 * 56 * 56  # 1x1 256->128 at 56x56; 1x1 256->512 at 28x28
    assert free.totals.backward_macs - frozen.totals.backward_macs == forward["stem"] + 2 * forward["conv2_x"] + readers
    assert frozen.totals.trainable_params == free.totals.trainable_params - 9_408 - 215_808 - 128


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_saved_activations_match_a_hand_count(device):
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    p = _train(model, (5, 16), device=device)
    saved = {name: p.modules[name].saved_bytes for name in ("0", "1", "2")}
    # Linear 0 keeps its input for the weight gradient (5*16 floats); ReLU keeps its output (5*32),
    # which Linear 2 also needs and is counted once; weights are not activations.
    assert saved == {"0": 5 * 16 * 4, "1": 5 * 32 * 4, "2": 0}
    assert p.totals.saved_bytes == p.training.saved_activations == 960


def test_precision_sets_activation_weight_and_state_bytes():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    params = 16 * 32 + 32 + 32 * 4 + 4
    for precision, sizes in PRECISIONS.items():
        for optimizer, copies in OPTIMIZER_STATES.items():
            memory = _train(model, (5, 16), precision=precision, optimizer=optimizer).training
            assert memory.weights == params * sizes.weight
            assert memory.gradients == params * sizes.gradient
            assert memory.optimizer_state == copies * params * sizes.optimizer_state
            assert memory.saved_activations == (5 * 16 + 5 * 32) * sizes.activation
            assert memory.total == memory.weights + memory.gradients + memory.optimizer_state + memory.peak_activations


def test_training_rows_add_up_and_meta_agrees_with_cpu():
    model = archprof.build_model("mobilenet_v2", width=0.5, resolution=96)
    meta = _train(model, (2, 3, 96, 96))
    cpu = _train(model, (2, 3, 96, 96), device="cpu")
    assert meta.totals == cpu.totals
    for by in archprof.GROUPINGS:
        rows = meta.group(by)
        assert sum(r.backward_macs for r in rows) == meta.totals.backward_macs
        assert sum(r.backward_flops for r in rows) == meta.totals.backward_flops
        assert sum(r.saved_bytes for r in rows) == meta.totals.saved_bytes
    assert not meta.uncounted


def test_a_training_step_leaves_the_model_as_it_was():
    model = archprof.build_model("resnet18")
    model.eval()
    for device in ("meta", "cpu"):
        _train(model, (1, 3, 64, 64), device=device)
    assert not model.training
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert int(model.bn1.num_batches_tracked) == 0


def test_a_step_with_nothing_to_train_is_a_one_line_error():
    frozen = nn.Linear(4, 2).requires_grad_(False)
    with pytest.raises(archprof.ProfileError, match=r"^mode train: no output depends on a trainable parameter"):
        _train(frozen, (3, 4))

    class Argmax(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x).argmax(-1)

    with pytest.raises(archprof.ProfileError, match=r"^mode train: the model's output has no floating tensor"):
        _train(Argmax(), (3, 4))


def test_bad_training_options_are_refused():
    with pytest.raises(ValueError, match="mode must be one of inference, train"):
        archprof.profile(nn.Linear(2, 2), (1, 2), mode="training")
    with pytest.raises(ValueError, match="optimizer must be one of sgd, momentum, adam, adamw"):
        _train(nn.Linear(2, 2), (1, 2), optimizer="lamb")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16, amp"):
        _train(nn.Linear(2, 2), (1, 2), precision="int8")


# --- on the command line -------------------------------------------------------------------------

def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    from archprof.cli import run

    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_mode_train_on_the_command_line_carries_the_split_and_the_memory_in_json_and_csv(capsys):
    import csv
    import io
    import json

    code, out, _ = _cli(capsys, "profile", "resnet50", "--mode", "train", "--optimizer", "adam", "-f", "json")
    assert code == 0
    model = json.loads(out)["models"][0]
    # forward 4,089,184,256 MACs (torchvision's 4.09 GFLOPS), backward 2x that less conv1's input gradient
    assert model["totals"]["macs"] == 4_089_184_256 + 8_060_354_560
    assert model["totals"]["backward_macs"] == 8_060_354_560
    assert model["conditions"]["mode"] == "train (adam, fp32)"
    params = 25_557_032  # torchvision's num_params for resnet50
    assert model["training"]["optimizer_state"] == 2 * params * 4 and model["training"]["weights"] == params * 4
    assert sum(r["backward_macs"] for r in model["rows"] if r["grouping"] == "stage") == 8_060_354_560

    code, out, _ = _cli(capsys, "profile", "resnet50", "--mode", "train", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["backward_macs"] == "8060354560" and rows[0]["mode"] == "train (sgd, fp32)"
    memory = {r["name"]: int(r["memory_bytes"]) for r in rows if r["grouping"] == "memory"}
    assert memory["weights"] == memory["gradients"] == params * 4 and memory["optimizer state (sgd)"] == 0


@pytest.mark.parametrize("fmt", ["table", "markdown", "latex"])
def test_mode_train_tables_show_forward_backward_and_memory(capsys, fmt):
    code, out, _ = _cli(capsys, "profile", "mobilenet_v2", "--mode", "train", "--per-stage", "-f", fmt)
    assert code == 0
    for label in ("forward MACs", "backward MACs", "saved for backward", "training memory: optimizer state", "train (sgd, fp32)"):
        assert label in out


@pytest.mark.parametrize("argv, message", [
    (("profile", "resnet18", "--optimizer", "adam"), "--optimizer is for a training step: add --mode train"),
    (("resnet", "--precision", "bf16"), "--precision is for a training step: add --mode train"),
    (("profile", "resnet18", "--mode", "train", "--latency"), "--latency times an inference forward"),
    (("profile", "torch.nn:Flatten", "--input", "3x4:int64", "--mode", "train"), "mode train: the model's output has no floating tensor"),
    (("profile", "torch.nn:Identity", "--input", "3x4", "--mode", "train"), "mode train: no output depends on a trainable parameter"),
    (("profile", "resnet18", "--mode", "training"), "--mode"),
])
def test_bad_training_options_are_one_line_and_exit_2(capsys, argv, message):
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("archprof: error:") and message in err


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_checkpointed_block_is_recomputed_in_the_backward_and_saves_only_its_input(device):
    from torch.utils.checkpoint import checkpoint

    class Checkpointed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16))
            self.b = nn.Linear(16, 4)

        def forward(self, x):
            return self.b(checkpoint(self.a, x, use_reentrant=False))

    p = _train(Checkpointed(), (2, 8), device=device)
    layers = {r.name: r for r in p.group("layer")}
    # a.0 (2*8*16 = 256 MACs): recomputed in the backward (256) and its weight gradient (256); a.2
    # (2*16*16 = 512): not recomputed (nothing after it inside the checkpoint is needed), its
    # input and weight gradients (2 x 512).
    assert (layers["a.0"].macs, layers["a.0"].backward_macs) == (256 + 512, 512)
    assert (layers["a.2"].macs, layers["a.2"].backward_macs) == (512 + 1024, 1024)
    # Inside the checkpoint nothing is saved; it keeps its input x (2x8 floats), b its input (2x16).
    assert [layers[n].saved_bytes for n in ("a.0", "a.1", "a.2", "b")] == [0, 0, 0, 2 * 16 * 4]
    assert p.totals.saved_bytes == 2 * 8 * 4 + 2 * 16 * 4


def test_flop_counter_mode_counts_a_depthwise_weight_gradient_as_a_dense_one():
    """torch's conv_backward_flop ignores groups (torch/utils/flop_counter.py): the weight gradient
    of a depthwise 3x3 over 8 channels at 16x16 is 8*16*16*9 = 18,432 MACs, FlopCounterMode counts
    8 x 8*16*16*9 = 147,456. archprof's rule takes the forward's MACs, groups included."""
    model = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False))
    p = _train(model, (1, 3, 16, 16))
    pointwise, depthwise = 3 * 8 * 16 * 16, 8 * 16 * 16 * 9
    assert (_layer(p, "0").backward_macs, _layer(p, "1").backward_macs) == (pointwise, 2 * depthwise)
    meta = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)).to("meta")
    with FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, 3, 16, 16, device="meta")).sum().backward()
    backward = counter.get_flop_counts()["Global"][torch.ops.aten.convolution_backward] // 2
    assert backward == pointwise + depthwise + 8 * depthwise


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_models_own_loss_is_differentiated_and_its_backward_costed(device):
    """A model that returns its own scalar loss (as a Hugging Face model given labels): the step
    differentiates it alone. Cross-entropy's backward: log-softmax's 4 per element and NLL's one
    write per target; MSE's 2 per element."""

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 5, bias=False)

        def forward(self, x, labels):
            logits = self.fc(x)
            return {"logits": logits, "loss": nn.functional.cross_entropy(logits, labels)}

    p = archprof.profile(Classifier(), mode="train", device=device,
                         inputs={"x": archprof.InputSpec((4, 8)), "labels": archprof.InputSpec((4,), torch.int64, 0, 5)})
    loss = {op.op: (op.macs, op.flops) for op in p.ops if op.phase == "backward" and op.op in
            ("aten.nll_loss_backward", "aten._log_softmax_backward_data")}
    assert loss == {"aten.nll_loss_backward": (0, 4), "aten._log_softmax_backward_data": (0, 4 * 4 * 5)}
    assert not p.uncounted
    assert _layer(p, "fc").backward_macs == 4 * 8 * 5  # the weight gradient; x needs none

    class Regressor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 5, bias=False)

        def forward(self, x, target):
            return {"loss": nn.functional.mse_loss(self.fc(x), target)}

    p = archprof.profile(Regressor(), mode="train", device=device,
                         inputs={"x": archprof.InputSpec((4, 8)), "target": archprof.InputSpec((4, 5))})
    assert [op.flops for op in p.ops if op.op == "aten.mse_loss_backward"] == [2 * 4 * 5]
    assert not p.uncounted


class NormsEmbeddingUpsampling(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Linear(8, 8, bias=False)
        self.ln = nn.LayerNorm(8)
        self.gn = nn.GroupNorm(2, 4)
        self.conv = nn.Conv2d(4, 4, 1)
        self.emb = nn.Embedding(10, 4)

    def forward(self, x, y, ids):
        a = self.ln(self.pre(x)).sum()
        b = nn.functional.interpolate(self.conv(self.gn(y)), scale_factor=2, mode="nearest").sum()
        c = nn.functional.interpolate(self.conv(y), scale_factor=2, mode="bilinear").sum()
        return a + b + c + self.emb(ids).sum()


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_layer_and_group_norm_embedding_and_upsampling_backward_cost_their_closed_forms(device):
    inputs = {"x": archprof.InputSpec((2, 5, 8)), "y": archprof.InputSpec((2, 4, 3, 3)),
              "ids": archprof.InputSpec((3, 5), torch.int64, 0, 10)}
    p = archprof.profile(NormsEmbeddingUpsampling(), inputs=inputs, mode="train", device=device, strict=True)
    assert not any(op.macs for op in p.ops if op.phase == "backward" and op.layer_type != "matmul" and "conv" not in op.layer_type)
    backward = {op.op: (op.flops, op.layer_type) for op in p.ops if op.phase == "backward" and op.op in (
        "aten.native_layer_norm_backward", "aten.native_group_norm_backward", "aten.embedding_dense_backward",
        "aten.upsample_nearest2d_backward", "aten.upsample_bilinear2d_backward")}
    assert backward == {
        # the layer norm's input comes from a trained layer: statistics, input, weight and bias
        # gradients, 9 per element of its 2 x 5 x 8 input (as batch norm's, which the README states)
        "aten.native_layer_norm_backward": (9 * 80, "normalization"),
        # the group norm's input is the data: weight and bias gradients alone, x_hat 2 + sum(dy) 1 + sum(dy x_hat) 2
        "aten.native_group_norm_backward": (5 * 72, "normalization"),
        # one add per looked-up row element into the weight gradient: 3 x 5 x 4
        "aten.embedding_dense_backward": (60, "embedding"),
        # one add per output gradient (2 x 4 x 6 x 6) into its source; bilinear 4 weighted adds, 8
        "aten.upsample_nearest2d_backward": (288, "resampling"),
        "aten.upsample_bilinear2d_backward": (8 * 288, "resampling"),
    }


class Pools(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)
        self.pool = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(3)  # (to 1 it is a mean)
        self.max = nn.MaxPool2d(2)

    def forward(self, x):
        y = self.conv(x)
        return self.pool(y).sum() + self.gap(y).sum() + self.max(y).sum()


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_pool_backward_adds_each_output_gradient_into_its_taps(device):
    p = archprof.profile(Pools(), (1, 2, 4, 4), mode="train", device=device, strict=True)
    backward = {op.op: (op.macs, op.flops) for op in p.ops if op.phase == "backward" and "pool" in op.op}
    assert {op.layer_type for op in p.ops if "pool" in op.op} == {"pooling"}  # forward and backward alike
    assert backward == {
        # 2 x 2 windows over 2 x 4 x 4: 8 outputs, each divided (8) and added into its 4 taps (32)
        "aten.avg_pool2d_backward": (0, 8 + 32),
        # 4 -> 3 per dim: windows [0, 2), [1, 3), [2, 4), 2 x 2 taps each; 2 x 3 x 3 outputs, 72 taps
        "aten._adaptive_avg_pool2d_backward": (0, 18 + 72),
        # each output's gradient added into the tap that won: 8
        "aten.max_pool2d_with_indices_backward": (0, 8),
    }
