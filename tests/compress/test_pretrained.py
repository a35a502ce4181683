from __future__ import annotations

import torch

from canao.compress.pretrained import (
    base_arch,
    base_model_dir,
    encode,
    load_pretrained,
    load_tokenizer,
    pad_batch,
)


def test_pretrained_base_matches_transformers_bertmodel() -> None:
    from transformers import BertModel

    ref = BertModel.from_pretrained(str(base_model_dir()), local_files_only=True).eval()
    ours = load_pretrained(num_labels=2).eval()
    tok = load_tokenizer()
    ids, mask = pad_batch(encode(tok, ["a gorgeous, witty film", "dull and far too long ."], 32))
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask)
        hidden, pooled = ours.bert(ids, mask)
    valid = mask.bool()
    assert torch.allclose(hidden[valid], want.last_hidden_state[valid], atol=1e-4)
    assert torch.allclose(pooled, want.pooler_output, atol=1e-4)
    assert ours.spec == base_arch(2)
    assert ours.spec.num_layers == 6 and ours.spec.hidden == 384


def test_encode_truncates_and_pads() -> None:
    tok = load_tokenizer()
    ids = encode(tok, ["word " * 100, "short"], max_length=16)
    assert len(ids[0]) == 16 and ids[0][0] == tok.cls_token_id and ids[0][-1] == tok.sep_token_id
    x, m = pad_batch(ids)
    assert x.shape == (2, 16) and int(m[1].sum()) == len(ids[1]) and int(x[1, -1]) == 0
