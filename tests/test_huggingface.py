"""Hugging Face transformers models built from their configurations (no download), on meta.

Every MAC count is the closed form of the model's matmuls, written out per layer: projections,
attention (QK^T and AV: b x h x s_q x s_k x (d_head + d_head) = s_q x s_k x 2 x inner at batch 1),
MLP, and the language-modelling head. Every parameter count is the model's own
(``sum(p.numel() for p in model.parameters())``, tied embeddings once) and its closed form.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import torch

import archprof
from archprof.architectures.huggingface import build_hf_model, meta_masks_as_absent
from archprof.architectures.spec import SpecError, build_from_spec, parse_spec
from archprof.cli import run
from archprof.tracing.inputs import InputSpec

# --- closed forms ------------------------------------------------------------------------------


def bert_macs(s: int, d: int = 768, layers: int = 12, inner: int = 3072, vocab: int = 30522) -> int:
    per_layer = (
        4 * s * d * d  # Q, K, V, O projections
        + s * s * 2 * d  # QK^T and AV over all heads: 12 heads x s x s x (64 + 64)
        + 2 * s * d * inner  # intermediate and output dense
    )
    mlm_head = s * d * d + s * d * vocab  # the transform dense, then the decoder (tied to the embedding)
    return layers * per_layer + mlm_head


def bert_params(d: int = 768, layers: int = 12, inner: int = 3072, vocab: int = 30522, positions: int = 512, types: int = 2) -> int:
    embeddings = (vocab + positions + types) * d + 2 * d  # word, position, token type; LayerNorm
    per_layer = (
        4 * (d * d + d)  # Q, K, V, O with biases
        + 2 * d  # attention output LayerNorm
        + (d * inner + inner) + (inner * d + d)  # intermediate and output dense
        + 2 * d  # output LayerNorm
    )
    mlm_head = (d * d + d) + 2 * d + vocab  # transform dense, LayerNorm, decoder bias (its weight is tied)
    return embeddings + layers * per_layer + mlm_head


def gpt2_macs(s: int, d: int = 768, layers: int = 12, vocab: int = 50257) -> int:
    per_layer = (
        s * d * 3 * d  # c_attn: Q, K, V in one Conv1D
        + s * d * d  # c_proj
        + s * s * 2 * d  # QK^T and AV over 12 heads of 64 (causal: the full square, as eager's matmuls)
        + 2 * s * d * 4 * d  # c_fc to 4d and back
    )
    return layers * per_layer + s * d * vocab  # lm_head, tied to wte


def gpt2_params(d: int = 768, layers: int = 12, vocab: int = 50257, positions: int = 1024) -> int:
    per_layer = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
    return vocab * d + positions * d + layers * per_layer + 2 * d  # wte, wpe, blocks, ln_f; lm_head tied


LLAMA = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
         "intermediate_size": 688, "vocab_size": 1000}


def llama_macs(s: int, d: int = 256, layers: int = 4, heads: int = 8, kv_heads: int = 2, inner: int = 688, vocab: int = 1000) -> int:
    head_dim = d // heads
    per_layer = (
        2 * s * d * d  # q_proj, o_proj
        + 2 * s * d * kv_heads * head_dim  # k_proj, v_proj: grouped-query attention, 2 of 8 heads
        + heads * s * s * 2 * head_dim  # QK^T and AV: every query head (K and V are shared, not fewer)
        + 3 * s * d * inner  # gate_proj, up_proj, down_proj (SwiGLU)
    )
    # Rotary embeddings rotate q and k element-wise: no MACs. lm_head is not tied in Llama.
    return layers * per_layer + s * d * vocab


def llama_params(d: int = 256, layers: int = 4, heads: int = 8, kv_heads: int = 2, inner: int = 688, vocab: int = 1000) -> int:
    head_dim = d // heads
    per_layer = 2 * d * d + 2 * d * kv_heads * head_dim + 3 * d * inner + 2 * d  # no biases; two RMSNorm weights
    return vocab * d + layers * per_layer + d + d * vocab  # embed_tokens, layers, final norm, lm_head


def t5_macs(s_enc: int, s_dec: int, d: int = 512, inner: int = 512, ff: int = 2048, layers: int = 6, vocab: int = 32128) -> int:
    # inner = heads x d_kv = 8 x 64; T5 does not scale its scores, which changes no MAC.
    encoder_layer = 4 * s_enc * d * inner + s_enc * s_enc * 2 * inner + 2 * s_enc * d * ff
    decoder_layer = (
        4 * s_dec * d * inner + s_dec * s_dec * 2 * inner  # causal self-attention
        + 2 * s_dec * d * inner + 2 * s_enc * d * inner  # cross-attention: q, o on the decoder; k, v on the encoder output
        + s_dec * s_enc * 2 * inner  # cross-attention scores and weighted sum
        + 2 * s_dec * d * ff  # ReLU feed-forward
    )
    return layers * (encoder_layer + decoder_layer) + s_dec * d * vocab  # lm_head, tied to the shared embedding


def t5_params(d: int = 512, inner: int = 512, ff: int = 2048, layers: int = 6, vocab: int = 32128, buckets: int = 32, heads: int = 8) -> int:
    encoder_layer = 4 * d * inner + d + 2 * d * ff + d  # attention, its RMS norm weight, feed-forward, norm
    decoder_layer = encoder_layer + 4 * d * inner + d  # plus cross-attention and its norm
    relative_bias = buckets * heads  # in each stack's first self-attention
    return vocab * d + layers * (encoder_layer + decoder_layer) + 2 * (relative_bias + d)  # shared; stacks; final norms


# --- the four architectures, each at its published default configuration or a small one ------------


def test_bert_base_macs_and_params_are_the_closed_forms():
    model = build_hf_model("bert", seq_len=16)  # BertConfig(): 12 layers, d 768, 12 heads, d_ff 3072
    assert type(model).__name__ == "BertForMaskedLM"
    p = archprof.profile(model)
    assert p.device == "meta"
    assert p.totals.macs == bert_macs(16) == 1_748_164_608
    assert p.totals.params == sum(t.numel() for t in model.parameters()) == bert_params() == 109_514_298
    head = {r.name: r.macs for r in p.group("block")}["head"]
    assert head == 16 * 768 * 768 + 16 * 768 * 30522  # the MLM head's transform and decoder, as one block


def test_bert_base_model_without_head_is_the_published_110m():
    model = build_hf_model("bert", seq_len=16, head="base")
    assert type(model).__name__ == "BertModel"
    pooler = 768 * 768  # dense on the first token, batch 1
    assert archprof.profile(model).totals.macs == bert_macs(16) - (16 * 768 * 768 + 16 * 768 * 30522) + pooler
    # BERT-base's 110M: the MLM head's transform, LayerNorm and bias out, the pooler in.
    assert archprof.profile(model).totals.params == bert_params() - (768 * 768 + 3 * 768 + 30522) + (768 * 768 + 768) == 109_482_240


def test_gpt2_small_macs_and_params_are_the_closed_forms():
    model = build_hf_model("gpt2", seq_len=16)  # GPT2Config(): 12 layers, d 768, 12 heads, vocab 50257
    assert type(model).__name__ == "GPT2LMHeadModel"
    p = archprof.profile(model)
    assert p.totals.macs == gpt2_macs(16) == 1_981_231_104
    assert p.totals.params == sum(t.numel() for t in model.parameters()) == gpt2_params() == 124_439_808
    blocks = {r.name: r.macs for r in p.group("block")}
    assert blocks["GPT2Block"] == gpt2_macs(16) - 16 * 768 * 50257 and blocks["head"] == 16 * 768 * 50257


def test_llama_with_grouped_query_attention_and_rotary_embeddings():
    model = build_hf_model("llama", seq_len=16, **LLAMA)
    attention = model.model.layers[0].self_attn
    assert (attention.k_proj.out_features, attention.q_proj.out_features) == (2 * 32, 8 * 32)
    p = archprof.profile(model)
    assert p.totals.macs == llama_macs(16) == 48_922_624
    assert p.totals.params == sum(t.numel() for t in model.parameters()) == llama_params() == 3_283_200
    # The attention MACs are the query heads' (8), not the key/value heads' (2).
    assert sum(op.macs for op in p.ops if op.module == "model.layers.0.self_attn") == 8 * 16 * 16 * 2 * 32


def test_t5_small_encoder_decoder_with_its_own_decoder_length():
    model = build_hf_model("t5", seq_len=16, decoder_seq_len=8)  # T5Config(): t5-small
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert model.archprof_inputs.kwargs["decoder_input_ids"] == InputSpec((1, 8), torch.int64, 0, 32128)
    p = archprof.profile(model)
    assert p.totals.macs == t5_macs(16, 8) == 662_831_104
    assert p.totals.params == sum(t.numel() for t in model.parameters()) == t5_params() == 60_506_624


def test_bart_whose_decoder_makes_its_own_mask_runs_on_meta():
    # BART's decoder builds itself a mask of ones, which transformers then reads to skip it.
    model = build_hf_model("bart", seq_len=16)  # BartConfig(): bart-large, 12 + 12 layers, d 1024, d_ff 4096
    p = archprof.profile(model)
    assert p.device == "meta" and not p.notices
    # The encoder-decoder closed form of t5_macs (biases and learned positions add no MACs).
    assert p.totals.macs == t5_macs(16, 16, d=1024, inner=1024, ff=4096, layers=12, vocab=50265) == 6_479_560_704


def test_an_image_model_gets_pixels_at_its_configured_size():
    model = build_hf_model("vit")  # ViTConfig(): ViT-B/16 at 224, no language-modelling head: ViTModel
    assert model.archprof_inputs.kwargs == {"pixel_values": InputSpec((1, 3, 224, 224))}
    d, tokens = 768, 14 * 14 + 1  # 196 patches and the class token
    patches = 196 * d * (3 * 16 * 16)
    per_layer = 4 * tokens * d * d + tokens * tokens * 2 * d + 2 * tokens * d * 4 * d
    p = archprof.profile(model)
    assert p.totals.macs == patches + 12 * per_layer + d * d == 17_563_650_048  # + the pooler on the class token
    assert p.totals.params == sum(t.numel() for t in model.parameters()) == 86_389_248


@pytest.mark.parametrize(
    ("name", "options", "macs"),
    [
        ("gpt2", {}, gpt2_macs(8)),
        ("bert", {}, bert_macs(8)),
        ("llama", LLAMA, llama_macs(8)),
        ("t5", {}, t5_macs(8, 8)),
    ],
)
def test_eager_and_sdpa_attention_count_the_same_macs(name, options, macs):
    eager = archprof.profile(build_hf_model(name, seq_len=8, attention="eager", **options))
    sdpa = archprof.profile(build_hf_model(name, seq_len=8, attention="sdpa", **options))
    assert eager.totals.macs == sdpa.totals.macs == macs


def test_batch_scales_every_mac_and_seq_len_enters_attention_squared():
    one = archprof.profile(build_hf_model("gpt2", seq_len=32)).totals.macs
    four = archprof.profile(build_hf_model("gpt2", seq_len=32, batch=4)).totals.macs
    assert four == 4 * one == 4 * gpt2_macs(32)
    double = archprof.profile(build_hf_model("gpt2", seq_len=64)).totals.macs
    assert double - 2 * one == 12 * 2 * 768 * (64**2 - 2 * 32**2)  # only QK^T and AV grow faster than s


# --- inputs -------------------------------------------------------------------------------------


def test_default_inputs_are_token_ids_below_the_vocabulary_and_a_mask_of_ones():
    model = build_hf_model("gpt2", seq_len=64, batch=2)
    assert model.archprof_name == "hf:gpt2"
    assert model.archprof_inputs.args == ()
    assert model.archprof_inputs.kwargs == {
        "input_ids": InputSpec((2, 64), torch.int64, 0, 50257),
        "attention_mask": InputSpec((2, 64), torch.int64, 1, 2),
    }


def test_a_real_cpu_forward_with_the_mask_counts_what_meta_counts():
    # transformers reads the mask's values on the CPU (all ones: it skips the mask); on meta the
    # hook leaves the mask out, which is the same forward. The CPU adds only the check's sum and
    # comparison over the b x s mask elements.
    tiny = {"n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100}
    cpu_model = build_hf_model("gpt2", device="cpu", seq_len=8, **tiny)
    on_cpu = archprof.profile(cpu_model, device="cpu")
    on_meta = archprof.profile(build_hf_model("gpt2", seq_len=8, **tiny))
    assert on_cpu.device == "cpu" and on_meta.device == "meta"
    assert on_cpu.totals.macs == on_meta.totals.macs == gpt2_macs(8, d=64, layers=2, vocab=100)
    assert on_cpu.totals.flops - on_meta.totals.flops == 8  # sum over 8 mask elements (7 adds) and one ==


def test_eager_attention_leaves_only_meta_masks_out():
    model = build_hf_model("bert", seq_len=4, num_hidden_layers=1)
    meta_mask = torch.ones(1, 4, dtype=torch.int64, device="meta")
    cpu_mask = torch.ones(1, 4, dtype=torch.int64)
    assert meta_masks_as_absent(model, (), {"attention_mask": meta_mask}) == ((), {"attention_mask": None})
    assert meta_masks_as_absent(model, (None, meta_mask), {}) == ((None, None), {})  # forward(input_ids, attention_mask, ...)
    assert meta_masks_as_absent(model, (), {"attention_mask": cpu_mask}) is None
    assert build_hf_model("bert", attention="eager")._forward_pre_hooks  # SDPA reads meta masks in its mask function
    assert not build_hf_model("bert")._forward_pre_hooks


# --- names, options, configuration files --------------------------------------------------------


def test_spec_options_become_configuration_fields_and_builder_options(tmp_path):
    spec = parse_spec("hf:llama:hidden_size=256,num_hidden_layers=4,num_attention_heads=8,num_key_value_heads=2,"
                      "intermediate_size=688,vocab_size=1000,seq_len=16")
    assert (spec.name, spec.factory) == ("hf:llama", False)
    model = build_from_spec(spec)
    assert model.config.num_key_value_heads == 2 and not hasattr(model.config, "seq_len")
    assert archprof.profile(model).totals.macs == llama_macs(16)


def test_gpt2_fields_take_their_common_names_too():
    model = build_hf_model("gpt2", seq_len=8, hidden_size=128, num_attention_heads=4, num_hidden_layers=2)
    assert (model.config.n_embd, model.config.n_head, model.config.n_layer) == (128, 4, 2)
    assert archprof.profile(model).totals.macs == gpt2_macs(8, d=128, layers=2)


def test_a_local_config_file_or_its_folder_with_overrides(tmp_path):
    config = {"model_type": "gpt2", "n_embd": 128, "n_head": 4, "n_layer": 2, "vocab_size": 1000,
              "architectures": ["GPT2LMHeadModel"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    from_file = build_from_spec(parse_spec(f"hf:{tmp_path / 'config.json'}:seq_len=8"))
    from_folder = build_from_spec(parse_spec(f"hf:{tmp_path}:n_layer=3,seq_len=8"))
    assert archprof.profile(from_file).totals.macs == gpt2_macs(8, d=128, layers=2, vocab=1000)
    assert archprof.profile(from_folder).totals.macs == gpt2_macs(8, d=128, layers=3, vocab=1000)


def test_a_70b_configuration_builds_on_meta_without_weight_memory():
    model = build_hf_model("llama", seq_len=8, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                           num_attention_heads=64, num_key_value_heads=8, vocab_size=128256)
    assert all(p.device.type == "meta" for p in model.parameters())
    d, kv = 8192, 8 * 128
    layer = 2 * d * d + 2 * d * kv + 3 * d * 28672 + 2 * d
    assert sum(p.numel() for p in model.parameters()) == 2 * 128256 * d + 80 * layer + d == 70_553_706_496


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hf:meta-llama/Llama-2-7b", "hf:meta-llama/Llama-2-7b would need a download from the Hugging Face Hub"),
        ("hf:bert-base-uncased", "would need a download from the Hugging Face Hub, and archprof downloads nothing; did you mean hf:bert?"),
        ("hf:lama", "hf:lama: unknown model type; did you mean hf:llama"),
        ("hf:gpt2:hiden_size=64", "GPT2Config has no field 'hiden_size'; did you mean hidden_size?"),
        ("hf:gpt2:seq_len=2048", "seq_len 2048 exceeds its 1024 learned positions (set n_positions=2048"),
        ("hf:gpt2:seq_len=0", "seq_len must be an integer >= 1, got 0"),
        ("hf:gpt2:head=classifier", "head must be one of lm, base"),
        ("hf:gpt2:hidden_size=100", "cannot build hf:gpt2: ValueError: `embed_dim` must be divisible by num_heads"),
        ("hf:gpt2:dtype=int8", "dtype 'int8' is not a floating dtype"),
        ("hf:missing/config.json", "config file missing/config.json does not exist"),
        ("hf:", "hf: needs a model type or a config file"),
    ],
)
def test_bad_names_and_options_are_one_line_spec_errors(spec, message):
    with pytest.raises(SpecError) as err:
        build_from_spec(parse_spec(spec))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_invalid_configuration_is_one_line_with_its_root_cause():
    with pytest.raises(SpecError, match="hf:gpt_neo: invalid configuration: ValueError: Configuration for convolutional module"):
        build_from_spec(parse_spec("hf:gpt_neo:num_layers=2"))  # its attention_types still list 24 layers


def test_a_model_without_sdpa_takes_eager_attention():
    model = build_hf_model("gpt_neo", seq_len=8, num_layers=2, attention_types=[[["global", "local"], 1]])
    assert model.config._attn_implementation == "eager"
    assert archprof.profile(model).device == "meta"


def test_nothing_touches_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("archprof opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert archprof.profile(build_hf_model("gpt2", seq_len=8)).totals.macs == gpt2_macs(8)
    with pytest.raises(SpecError, match="would need a download"):
        build_from_spec(parse_spec("hf:openai-community/gpt2-large"))


def test_a_hub_name_already_in_the_local_cache_needs_no_download(tmp_path):
    snapshot = tmp_path / "models--acme--tiny-gpt2" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100}))
    (tmp_path / "models--acme--tiny-gpt2" / "refs").mkdir()
    (tmp_path / "models--acme--tiny-gpt2" / "refs" / "main").write_text("0123abcd")
    env = {"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "archprof", "profile", "hf:acme/tiny-gpt2", "--seq-len", "8", "--format", "json"],
                          capture_output=True, text=True, env=env, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["models"][0]["totals"]["macs"] == gpt2_macs(8, d=64, layers=2, vocab=100)


# --- the command line ---------------------------------------------------------------------------


def test_cli_profile_gpt2_prints_the_exact_macs_in_json(capsys):
    assert run(["profile", "hf:gpt2", "--format", "json"]) == 0
    model = json.loads(capsys.readouterr().out)["models"][0]
    assert model["name"] == "hf:gpt2"
    assert model["totals"]["macs"] == gpt2_macs(128) == 16_114_089_984  # the default seq_len, 128
    assert model["totals"]["params"] == gpt2_params()
    assert model["config"]["model_type"] == "gpt2" and model["config"]["n_layer"] == 12


def test_cli_compare_gpt2_and_bert(capsys):
    assert run(["compare", "hf:gpt2", "hf:bert", "--seq-len", "64", "--format", "json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert [(m["name"], m["totals"]["macs"]) for m in models] == [("hf:gpt2", gpt2_macs(64)), ("hf:bert", bert_macs(64))]
    assert run(["compare", "hf:gpt2", "hf:bert"]) == 0
    assert "hf:gpt2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["profile", "hf:meta-llama/Llama-2-7b"], "would need a download from the Hugging Face Hub"),
        (["compare", "hf:gpt2", "hf:nosuchmodel"], "hf:nosuchmodel: unknown model type"),
    ],
)
def test_cli_hf_errors_are_one_line_with_exit_2(args, message, capsys, tmp_path):
    out = tmp_path / "out.json"
    assert run([*args, "-o", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archprof: error: ") and message in lines[0], captured.err
    assert not out.exists()


def test_cli_without_transformers_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)  # "import transformers" raises ImportError
    assert run(["profile", "hf:gpt2"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "archprof: error: hf: models need the transformers package: pip install 'archprof[hf]'"
    assert "Traceback" not in captured.err + captured.out
