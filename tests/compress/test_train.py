from __future__ import annotations

import pytest
import torch

from canao.compress.train import TrainConfig, cross_entropy_loss, train
from canao.modeling import BertClassifier, build_module
from tests.compress.conftest import random_encoded, small_spec


class Killed(Exception):
    pass


def _model(vocab: int = 30522) -> BertClassifier:
    m = build_module(small_spec(vocab), seed=1)
    assert isinstance(m, BertClassifier)
    return m


def test_a_killed_run_resumes_to_the_same_weights(tmp_path) -> None:
    enc = random_encoded(48)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, save_every=2)  # 6 steps
    ref = _model()
    summary = train(ref, cross_entropy_loss, enc, cfg, tmp_path / "ref")
    assert summary["steps"] == 6

    def die(step: int, loss: float) -> None:
        if step == 5:
            raise Killed

    model = _model()
    with pytest.raises(Killed):
        train(model, cross_entropy_loss, enc, cfg, tmp_path / "run", on_step=die)
    assert (tmp_path / "run" / "state.json").is_file()  # saved at step 4
    resumed = _model()  # a fresh process would start from scratch weights
    steps_seen: list[int] = []
    train(
        resumed,
        cross_entropy_loss,
        enc,
        cfg,
        tmp_path / "run",
        on_step=lambda s, _: steps_seen.append(s),
    )
    assert steps_seen == [5, 6]
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k


def test_training_lowers_the_loss(tmp_path) -> None:
    enc = random_encoded(32, vocab=2000)
    model = _model(vocab=2000)
    losses: list[float] = []
    cfg = TrainConfig(epochs=40, batch_size=32, lr=3e-3, warmup=0.0, save_every=1000)
    train(
        model,
        cross_entropy_loss,
        enc,
        cfg,
        tmp_path / "s",
        on_step=lambda _s, loss: losses.append(loss),
    )
    assert losses[-1] < 0.3 * losses[0]  # it can memorise 32 random labels


def test_resume_with_other_options_is_refused(tmp_path) -> None:
    enc = random_encoded(48)

    def die(step: int, loss: float) -> None:
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        train(
            _model(),
            cross_entropy_loss,
            enc,
            TrainConfig(batch_size=16, save_every=2),
            tmp_path,
            on_step=die,
        )
    with pytest.raises(ValueError, match="another configuration"):
        train(_model(), cross_entropy_loss, enc, TrainConfig(batch_size=8, save_every=2), tmp_path)


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"lr": -1.0}, {"warmup": 1.5}, {"max_length": 2}])
def test_bad_config(bad) -> None:
    with pytest.raises(ValueError):
        TrainConfig(**bad)
