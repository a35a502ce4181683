from __future__ import annotations

import json

import pytest

from canao.space import (
    KNOWN_ARCHS,
    ArchSpec,
    BlockSpec,
    LayerSpec,
    SpecError,
    load_arch,
    matmul_flops,
)

DESIGN_EXAMPLE = """{"name": "minilm-l6-h384", "vocab_size": 30522, "max_position": 512,
 "seq_len": 128, "batch": 1, "hidden": 384, "num_labels": 2,
 "layers": [{"heads": 12, "head_dim": 32, "ffn": 1536},
            {"heads": 8, "head_dim": 32, "ffn": 1024}]}"""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heads": 0}, "heads must be >= 1"),
        ({"hidden": -4}, "hidden must be >= 1"),
        ({"ffn": 2.5}, "ffn must be an integer"),
        ({"seq_len": True}, "seq_len must be an integer"),
        ({"dtype": "int3"}, "dtype must be one of"),
    ],
)
def test_block_validation_names_field(kwargs: dict, message: str) -> None:
    base = dict(hidden=768, heads=12, head_dim=64, ffn=3072, seq_len=128)
    base.update(kwargs)
    with pytest.raises(SpecError, match=message):
        BlockSpec(**base)


def test_arch_validation() -> None:
    with pytest.raises(SpecError, match=r"seq_len must be <= max_position \(512\)"):
        ArchSpec.named("bert-base", seq_len=1024)
    with pytest.raises(SpecError, match="layers must be a non-empty"):
        ArchSpec(hidden=64, layers=())
    with pytest.raises(SpecError, match="unknown ArchSpec field"):
        ArchSpec.from_dict({"hidden": 64, "layers": [], "colour": 1})
    with pytest.raises(SpecError, match=r"layers\[0\] must be an object"):
        ArchSpec.from_dict({"hidden": 64, "layers": [{"heads": 1}]})
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json("{nope")
    with pytest.raises(SpecError, match="unknown architecture"):
        ArchSpec.named("gpt-9")


def test_bert_base_flops_match_hand_count() -> None:
    # Per layer at seq 128: QKV 2*128*768*2304, scores and context 2*12*128*128*64 each,
    # output projection 2*128*768*768, FFN 2 * 2*128*768*3072.
    per_layer = (
        2 * 128 * 768 * 2304
        + 2 * (2 * 12 * 128 * 128 * 64)
        + 2 * 128 * 768 * 768
        + 2 * (2 * 128 * 768 * 3072)
    )
    assert per_layer == 1_862_270_976
    arch = ArchSpec.named("bert-base")
    assert sum(matmul_flops(b) for b in arch.blocks()) == 12 * per_layer
    costs = next(arch.blocks()).costs()
    assert costs["qkv"].flops == 2 * 128 * 768 * 2304 + 128 * 2304  # + bias
    assert costs["attn_context"].flops == 2 * 12 * 128 * 128 * 64
    # the analytic total adds the element-wise work on top of the matmuls, < 1% for BERT-base
    assert 12 * per_layer < arch.flops < 1.01 * 12 * per_layer


def test_bert_base_params_match_transformers() -> None:
    from transformers import BertModel

    arch = ArchSpec.named("bert-base")
    hf = BertModel(arch.to_hf_config())
    n_hf = sum(p.numel() for p in hf.parameters())
    assert n_hf == 109_482_240
    assert arch.params - arch.costs()["classifier"].params == n_hf
    block = next(arch.blocks())
    assert block.params == sum(p.numel() for p in hf.encoder.layer[0].parameters())


def test_bytes_scale_with_dtype() -> None:
    b32 = BlockSpec(256, 4, 64, 1024, 64)
    b16 = BlockSpec(256, 4, 64, 1024, 64, dtype="float16")
    for name, c in b32.costs().items():
        assert c.bytes == 2 * b16.costs()[name].bytes, name
        assert c.flops == b16.costs()[name].flops


def test_design_json_round_trip() -> None:
    spec = ArchSpec.from_json(DESIGN_EXAMPLE)
    assert spec.name == "minilm-l6-h384"
    assert spec.layers[1] == LayerSpec(8, 32, 1024)
    assert not spec.is_uniform
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec and again.to_dict() == json.loads(DESIGN_EXAMPLE)
    blocks = list(spec.blocks())
    assert [b.attn_width for b in blocks] == [384, 256]
    assert all(b.hidden == 384 and b.seq_len == 128 for b in blocks)
    assert spec.tokens == 128 and all(b.tokens == spec.tokens for b in blocks)
    assert [b.attn_elems for b in blocks] == [12 * 128 * 128, 8 * 128 * 128]


@pytest.mark.parametrize("name", sorted(KNOWN_ARCHS))
def test_named_archs(name: str) -> None:
    layers, hidden, heads, ffn = KNOWN_ARCHS[name]
    spec = ArchSpec.named(name)
    assert spec.num_layers == layers and spec.hidden == hidden and spec.is_uniform
    assert spec.layers[0].heads == heads and spec.layers[0].ffn == ffn
    cfg = spec.to_hf_config()
    assert cfg.hidden_size == hidden and cfg.num_hidden_layers == layers


def test_named_sizes() -> None:
    assert 330e6 < ArchSpec.named("bert-large").params < 340e6
    assert 22e6 < ArchSpec.named("minilm-l6-h384").params < 23e6
    assert 4.3e6 < ArchSpec.named("bert-tiny").params < 4.5e6


def test_load_arch(tmp_path) -> None:
    assert load_arch("BERT-base").name == "bert-base"
    assert load_arch("bert-base", seq_len=64).seq_len == 64
    f = tmp_path / "a.json"
    f.write_text(DESIGN_EXAMPLE)
    assert load_arch(f).layers[0].heads == 12
    f.write_text('{"hidden": 64, "layers": [{"heads": 0, "head_dim": 8, "ffn": 8}]}')
    with pytest.raises(SpecError, match=r"a\.json: LayerSpec\.heads must be >= 1"):
        load_arch(f)
    with pytest.raises(SpecError, match="neither a known architecture"):
        load_arch(tmp_path / "missing.json")


def test_hf_config_refuses_heterogeneous(tiny_arch) -> None:
    with pytest.raises(SpecError, match="uniform"):
        tiny_arch.to_hf_config()
