"""The README's output contracts ("Output contracts"), one test per JSON and CSV key: each key's
value for torchvision's ResNet-50 at 1x3x224x224, an inference forward and a training step, each
number from its source (torchvision's metadata, or the closed form below from the architecture
table, He et al. 2016 Table 1, and the README's counting conventions)."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest

from archprof import __version__
from archprof.cli import run

# torchvision's ResNet50_Weights.IMAGENET1K_V1 metadata: num_params 25,557,032; _ops 4.089 (GMACs,
# which torchvision calls GFLOPS), exactly 4,089,184,256 multiply-accumulates.
PARAMS = 25_557_032
MACS = 4_089_184_256
CONVENTION = "MAC = one multiply-accumulate; FLOP = 2 per MAC, plus bias and element-wise ops"
STAGES = [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]  # (planes, blocks, stride): conv2_x .. conv5_x


def _window_taps(size: int, out: int, kernel: int, stride: int, padding: int) -> int:
    return sum(1 for i in range(out) for j in range(kernel) if 0 <= i * stride - padding + j < size)


def closed_form() -> dict[str, int]:
    """ResNet-50 (v1.5: the stride on the 3x3) op by op, at batch 1, float32 (4 bytes).

    Conventions (README "What is counted"): batch norm in inference 2 FLOPs per element and in
    training 7 (statistics 5, affine 2), ReLU 1, a residual add 1, max pool taps - outputs, the
    global average pool (a mean) 1 per input, the classifier's bias 1 per output; activations are
    the elements every op that is not a view writes; bytes read are each op's inputs and weights.
    Backward: each convolution's input and weight gradients (the image's excepted) take the
    forward's MACs; batch norm 9 per element, ReLU 1, max pool 1 per output, the mean's gradient 1
    per input, and one add per element where a block's input gradient arrives from two branches.
    """
    c = dict.fromkeys(["acts", "read", "calls", "elementwise", "bn", "relu", "accumulate"], 0)

    def conv(cin: int, hin: int, cout: int, hout: int, k: int) -> None:
        c["acts"] += cout * hout * hout
        c["read"] += cin * hin * hin + cout * cin * k * k
        c["calls"] += 1
        c["bn"] += cout * hout * hout  # every convolution is followed by its batch norm
        c["acts"] += cout * hout * hout
        c["read"] += cout * hout * hout + 4 * cout  # input, weight, bias, running mean and variance
        c["calls"] += 2  # batch norm on meta: aten.empty (a buffer) and aten.native_batch_norm

    def relu(n: int) -> None:
        c["relu"] += n
        c["acts"] += n
        c["read"] += n
        c["calls"] += 1

    conv(3, 224, 64, 112, 7)
    relu(64 * 112 * 112)
    pool_taps = 64 * _window_taps(112, 56, 3, 2, 1) ** 2
    c["elementwise"] += pool_taps - 64 * 56 * 56
    c["acts"] += 64 * 56 * 56
    c["read"] += 64 * 112 * 112
    c["calls"] += 1
    h, cin = 56, 64
    for planes, blocks, stride in STAGES:
        for b in range(blocks):
            out = h // (stride if b == 0 else 1)
            conv(cin, h, planes, h, 1)
            relu(planes * h * h)
            conv(planes, h, planes, out, 3)
            relu(planes * out * out)
            conv(planes, out, 4 * planes, out, 1)
            if b == 0:
                conv(cin, h, 4 * planes, out, 1)  # the projection shortcut
            n = 4 * planes * out * out
            c["elementwise"] += n  # the residual add
            c["acts"] += n
            c["read"] += 2 * n
            c["calls"] += 1
            relu(n)
            c["accumulate"] += cin * h * h  # the block's input feeds two branches
            h, cin = out, 4 * planes
    mean_inputs = 2048 * 7 * 7
    c["elementwise"] += mean_inputs + 1000  # the mean; the classifier's bias
    c["acts"] += 2048 + 1000
    c["read"] += mean_inputs + 1000 + 2048 + 2048 * 1000  # mean; addmm: bias, input, weight
    c["calls"] += 1 + 1 + 2  # mean, flatten (a view), t and addmm
    stem_macs = 64 * 112 * 112 * 3 * 7 * 7  # the image needs no gradient
    backward_macs = 2 * MACS - stem_macs
    flops = 2 * MACS + 2 * c["bn"] + c["relu"] + c["elementwise"]
    pool_outputs = 64 * 56 * 56  # the max pool's gradient: one add per output, into its winner
    backward_flops = 2 * backward_macs + 9 * c["bn"] + c["relu"] + pool_outputs + mean_inputs + c["accumulate"]
    loss = 999  # the scalar loss: the 1000 logits summed
    batches_tracked = 53  # each batch norm's num_batches_tracked += 1
    train_forward_flops = flops + 5 * c["bn"] + loss + batches_tracked
    return {
        "macs": MACS, "flops": flops, "activations": c["acts"], "bytes_read": 4 * c["read"],
        "bytes_written": 4 * c["acts"], "calls": c["calls"], "backward_macs": backward_macs,
        "backward_flops": backward_flops, "train_flops": train_forward_flops + backward_flops,
        # the peak: conv2_x's first block at its projection's batch norm, where the main branch's
        # output (256x56x56), the projection's output and its batch norm's output are live
        "peak_activation_bytes": 4 * 3 * 256 * 56 * 56,
    }


CLOSED = closed_form()


def run_captured(args: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = run(args)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def inference_json() -> dict:
    code, stdout, stderr = run_captured(["profile", "resnet50", "--per-stage", "--format", "json"])
    assert code == 0, stderr
    return json.loads(stdout)


@pytest.fixture(scope="module")
def training_json() -> dict:
    code, stdout, stderr = run_captured(["profile", "resnet50", "--mode", "train", "--format", "json"])
    assert code == 0, stderr
    return json.loads(stdout)


@pytest.fixture(scope="module")
def inference_csv() -> list[dict[str, str]]:
    code, stdout, stderr = run_captured(["profile", "resnet50", "--per-stage", "--format", "csv"])
    assert code == 0, stderr
    return list(csv.DictReader(io.StringIO(stdout)))


@pytest.fixture(scope="module")
def training_csv() -> list[dict[str, str]]:
    code, stdout, stderr = run_captured(["profile", "resnet50", "--mode", "train", "--format", "csv"])
    assert code == 0, stderr
    return list(csv.DictReader(io.StringIO(stdout)))


def test_the_closed_form_is_torchvisions_resnet50():
    # torchvision's metadata is not re-derived here: the closed form's own counts must reach it
    macs = 64 * 112 * 112 * 3 * 49
    h, cin = 56, 64
    for planes, blocks, stride in STAGES:
        for b in range(blocks):
            out = h // (stride if b == 0 else 1)
            macs += planes * h * h * cin + planes * out * out * planes * 9 + 4 * planes * out * out * planes
            macs += 4 * planes * out * out * cin if b == 0 else 0
            h, cin = out, 4 * planes
    assert macs + 2048 * 1000 == MACS


def test_json_holds_one_model_with_the_contracts_keys(inference_json):
    assert list(inference_json) == ["models"]
    (model,) = inference_json["models"]
    assert {"name", "config", "input_shape", "totals", "uncounted", "rows", "conditions"} <= set(model)


def test_json_name(inference_json):
    assert inference_json["models"][0]["name"] == "resnet50"


def test_json_config(inference_json):
    config = inference_json["models"][0]["config"]
    assert (config["depth"], config["num_classes"], config["resolution"]) == (50, 1000, 224)


def test_json_input_shape(inference_json):
    assert inference_json["models"][0]["input_shape"] == [1, 3, 224, 224]


@pytest.mark.parametrize("key", ["macs", "flops", "activations", "peak_activation_bytes"])
def test_json_totals_counted_key(inference_json, key):
    assert inference_json["models"][0]["totals"][key] == CLOSED[key]


def test_json_totals_params(inference_json):
    assert inference_json["models"][0]["totals"]["params"] == PARAMS


def test_json_uncounted(inference_json):
    assert inference_json["models"][0]["uncounted"] == {}


def test_json_rows_grouping_and_name(inference_json):
    rows = inference_json["models"][0]["rows"]
    assert [(r["grouping"], r["name"]) for r in rows] == [
        ("stage", s) for s in ["stem", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]]


@pytest.mark.parametrize("key", ["calls", "macs", "flops", "activations", "bytes_read", "bytes_written"])
def test_json_rows_add_up_to_the_closed_form(inference_json, key):
    assert sum(r[key] for r in inference_json["models"][0]["rows"]) == CLOSED[key]


def test_json_rows_params(inference_json):
    rows = inference_json["models"][0]["rows"]
    # the head is the classifier: 2048 x 1000 weights and 1000 biases
    assert sum(r["params"] for r in rows) == PARAMS and rows[-1]["params"] == 2048 * 1000 + 1000


def test_json_rows_stages_only_on_stride_rows(inference_json):
    assert not any("stages" in r for r in inference_json["models"][0]["rows"])
    code, stdout, stderr = run_captured(["profile", "resnet50", "--per-stride", "--format", "json"])
    assert code == 0, stderr
    stride_rows = json.loads(stdout)["models"][0]["rows"]
    # He et al. Table 1: conv1 and the max pool bring /4; conv3_x, conv4_x and conv5_x each halve
    assert {r["name"]: r["stages"] for r in stride_rows}["/4"] == ["conv2_x"]


CONDITIONS = {"input": "1x3x224x224", "dtype": "float32", "batch": 1, "device": "meta", "mode": "inference",
              "convention": CONVENTION, "version": __version__}


@pytest.mark.parametrize("key", list(CONDITIONS))
def test_json_conditions(inference_json, key):
    assert inference_json["models"][0]["conditions"][key] == CONDITIONS[key]


@pytest.mark.parametrize("key", ["backward_macs", "backward_flops"])
def test_json_training_totals_backward(training_json, key):
    assert training_json["models"][0]["totals"][key] == CLOSED[key]


def test_json_training_totals_macs_and_flops_are_forward_plus_backward(training_json):
    totals = training_json["models"][0]["totals"]
    assert (totals["macs"], totals["flops"]) == (MACS + CLOSED["backward_macs"], CLOSED["train_flops"])


@pytest.mark.parametrize(("key", "expected"), [
    ("optimizer", "sgd"), ("precision", "fp32"),
    ("weights", 4 * PARAMS), ("gradients", 4 * PARAMS), ("optimizer_state", 0),  # plain SGD keeps no state
])
def test_json_training_object(training_json, key, expected):
    assert training_json["models"][0]["training"][key] == expected


def test_json_training_total_is_weights_gradients_state_and_peak(training_json):
    training = training_json["models"][0]["training"]
    assert training["total"] == 8 * PARAMS + training["peak_activations"]
    assert training["saved_activations"] == training_json["models"][0]["totals"]["saved_bytes"]


def test_json_training_conditions_mode(training_json):
    assert training_json["models"][0]["conditions"]["mode"] == "train (sgd, fp32)"


CSV_HEADER = ["model", "grouping", "name", "calls", "macs", "flops", "params", "activations", "bytes_read", "bytes_written",
              "backward_macs", "backward_flops", "saved_bytes", "memory_bytes", "input", "dtype", "batch", "device", "mode",
              "convention", "version"]


def test_csv_header(inference_csv):
    assert list(inference_csv[0]) == CSV_HEADER


INFERENCE_TOTAL = {
    "model": "resnet50", "grouping": "total", "name": "total", "calls": CLOSED["calls"], "macs": MACS,
    "flops": CLOSED["flops"], "params": PARAMS, "activations": CLOSED["activations"], "bytes_read": CLOSED["bytes_read"],
    "bytes_written": CLOSED["bytes_written"], "backward_macs": 0, "backward_flops": 0, "saved_bytes": 0,
    "memory_bytes": "", **CONDITIONS,
}


@pytest.mark.parametrize("key", CSV_HEADER)
def test_csv_total_row(inference_csv, key):
    assert inference_csv[0][key] == str(INFERENCE_TOTAL[key])


def test_csv_rows_per_grouping_after_the_total(inference_csv):
    assert [(r["grouping"], r["name"]) for r in inference_csv[1:]] == [
        ("stage", s) for s in ["stem", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]]
    assert sum(int(r["macs"]) for r in inference_csv[1:]) == MACS


@pytest.mark.parametrize("key", ["backward_macs", "backward_flops"])
def test_csv_training_total_backward(training_csv, key):
    assert training_csv[0][key] == str(CLOSED[key])


def test_csv_training_saved_bytes_and_memory_rows(training_csv, training_json):
    training = training_json["models"][0]["training"]
    memory = {r["name"]: int(r["memory_bytes"]) for r in training_csv if r["grouping"] == "memory"}
    assert memory == {
        "weights": 4 * PARAMS, "gradients": 4 * PARAMS, "optimizer state (sgd)": 0,
        "saved for backward": int(training_csv[0]["saved_bytes"]),
        "peak activations (forward + backward)": training["peak_activations"],
        "training step total": 8 * PARAMS + training["peak_activations"],
    }
    assert all(r["memory_bytes"] == "" for r in training_csv if r["grouping"] != "memory")
    assert {r["mode"] for r in training_csv} == {"train (sgd, fp32)"}

