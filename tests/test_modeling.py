from __future__ import annotations

import torch
from transformers import BertForSequenceClassification

from canao.modeling import BertClassifier, BlockModel, build_module
from canao.space import ArchSpec, BlockSpec


def test_uniform_spec_equals_transformers() -> None:
    spec = ArchSpec.named("bert-mini", seq_len=24)
    torch.manual_seed(0)
    hf = BertForSequenceClassification(spec.to_hf_config()).eval()
    ours = BertClassifier(spec).eval()
    result = ours.load_state_dict(hf.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    ids = torch.randint(0, spec.vocab_size, (3, 24))
    mask = torch.ones(3, 24, dtype=torch.long)
    mask[1, 10:] = 0
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits
        out = ours(ids, mask)
        out_nomask = ours(ids)
        ref_nomask = hf(input_ids=ids).logits
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_nomask, ref_nomask, rtol=1e-5, atol=1e-5)


def test_pruned_heads_match_transformers_prune() -> None:
    """A heterogeneous spec reproduces a transformers model with heads pruned per layer."""
    spec = ArchSpec.named("bert-mini", seq_len=16)
    torch.manual_seed(1)
    hf = BertForSequenceClassification(spec.to_hf_config()).eval()
    ids = torch.randint(0, spec.vocab_size, (2, 16))
    # slice layer 0 to heads {1, 3} and layer 2's FFN to its first 300 neurons by hand
    sd = hf.state_dict()
    keep = torch.cat([torch.arange(h * 64, (h + 1) * 64) for h in (1, 3)])
    p = "bert.encoder.layer.0.attention."
    for n in ("query", "key", "value"):
        sd[f"{p}self.{n}.weight"] = sd[f"{p}self.{n}.weight"][keep]
        sd[f"{p}self.{n}.bias"] = sd[f"{p}self.{n}.bias"][keep]
    sd[f"{p}output.dense.weight"] = sd[f"{p}output.dense.weight"][:, keep]
    q = "bert.encoder.layer.2."
    sd[f"{q}intermediate.dense.weight"] = sd[f"{q}intermediate.dense.weight"][:300]
    sd[f"{q}intermediate.dense.bias"] = sd[f"{q}intermediate.dense.bias"][:300]
    sd[f"{q}output.dense.weight"] = sd[f"{q}output.dense.weight"][:, :300]
    d = spec.to_dict()
    d["layers"][0]["heads"] = 2
    d["layers"][2]["ffn"] = 300
    pruned = ArchSpec.from_dict(d)
    ours = BertClassifier(pruned).eval()
    ours.load_state_dict(sd, strict=True)
    # the same pruning through a masked reference: zero the dropped heads' value rows and the
    # dropped neurons' output columns in the full model, which removes their contribution
    masked = hf.state_dict()
    drop = torch.cat([torch.arange(h * 64, (h + 1) * 64) for h in (0, 2)])
    masked[f"{p}output.dense.weight"][:, drop] = 0
    masked[f"{q}output.dense.weight"][:, 300:] = 0
    hf.load_state_dict(masked)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_block_model_shapes_and_determinism() -> None:
    spec = BlockSpec(hidden=96, heads=3, head_dim=40, ffn=200, seq_len=12, batch=2)
    a, b = build_module(spec, seed=3), build_module(spec, seed=3)
    assert isinstance(a, BlockModel)
    (x,) = a.example_inputs()
    assert x.shape == (2, 12, 96)
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.shape == (2, 12, 96)
    assert torch.equal(ya, yb)
    n_params = sum(p.numel() for p in a.parameters())
    assert n_params == spec.params


def test_heterogeneous_param_count_matches_analytic(tiny_arch) -> None:
    model = build_module(tiny_arch)
    assert sum(p.numel() for p in model.parameters()) == tiny_arch.params
    ids, mask = model.example_inputs()  # the deployed signature: ids and attention mask
    assert mask.shape == ids.shape and 0 < int(mask.sum()) < mask.numel()
    with torch.no_grad():
        out = model(ids, mask)
        assert out.shape == (1, tiny_arch.num_labels)
        assert not torch.allclose(out, model(ids))  # the padding is masked out


def test_dtype_is_applied() -> None:
    spec = BlockSpec(hidden=64, heads=2, head_dim=32, ffn=128, seq_len=8, dtype="bfloat16")
    module = build_module(spec)
    assert {p.dtype for p in module.parameters()} == {torch.bfloat16}
    (x,) = module.example_inputs()
    assert x.dtype == torch.bfloat16
    ref = build_module(BlockSpec(64, 2, 32, 128, 8))
    with torch.no_grad():
        y, y32 = module(x), ref(x.float())
    assert y.dtype == torch.bfloat16
    assert (y.float() - y32).abs().max() < 0.1
