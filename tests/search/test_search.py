from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from canao.cli import main
from canao.search.accuracy import CapacityProxy
from canao.search.results import finalists, front, pareto_mask, trials_frame
from canao.search.space import SearchSpace
from canao.search.study import SearchConfig, SearchJob, open_storage, run_search
from canao.space import ArchSpec, load_arch

BASE = ArchSpec.named("minilm-l6-h384")


def _job(predictor: Path, **kw) -> SearchJob:
    cfg = SearchConfig(**{"budget_ms": 10.0, "trials": 40, **kw})
    return SearchJob(cfg, BASE.to_json(), 128, str(predictor))


def test_space_samples_valid_fixed_size_encodings() -> None:
    space = SearchSpace(BASE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    keys = set()
    for _ in range(50):
        trial = study.ask()
        arch = space.suggest(trial)
        keys.add(tuple(sorted(trial.params)))
        assert arch.hidden == 384 and 1 <= arch.num_layers <= 6 and arch.seq_len == 128
        assert all(1 <= x.heads <= 12 and x.ffn % 128 == 0 and x.ffn <= 1536 for x in arch.layers)
        assert space.decode(trial.params) == arch
        study.tell(trial, 0.0)
    assert len(keys) == 1  # every trial samples the same parameters
    assert space.size() == 6 * (12 * 12) ** 6


def test_proxy_is_labelled_and_monotone() -> None:
    proxy = CapacityProxy(BASE)
    assert proxy.kind == "proxy"
    assert proxy.estimate(BASE) == pytest.approx(1.0)
    small = ArchSpec.named("minilm-l6-h384")
    d = small.to_dict()
    d["layers"] = d["layers"][:2]
    assert proxy.estimate(ArchSpec.from_dict(d)) < 1.0
    proxy.estimate(BASE)
    assert proxy.hits == 1


def test_pareto_mask() -> None:
    import numpy as np

    acc = np.array([0.9, 0.8, 0.85, 0.95, 0.7])
    ms = np.array([10.0, 5.0, 12.0, 20.0, 6.0])
    assert pareto_mask(acc, ms).tolist() == [True, True, False, True, False]


def test_max_acc_respects_budget_and_resumes(predictor, tmp_path) -> None:
    job = _job(predictor)
    study = run_search(job, tmp_path)
    df = trials_frame(study)
    assert len(df) == 40 and df["feasible"].any() and (~df["feasible"]).any()
    best = finalists(df, 3)
    assert (best["predicted_ms"] <= 10.0).all()
    assert best["accuracy"].is_monotonic_decreasing
    assert study.best_trial.user_attrs["predicted_ms"] <= 10.0  # constraints, not a penalty
    first = [t.params for t in study.trials]
    again = run_search(_job(predictor, trials=55), tmp_path)
    assert len(again.trials) == 55 and [t.params for t in again.trials[:40]] == first


def test_same_seed_same_search(predictor, tmp_path) -> None:
    a = run_search(_job(predictor, trials=25), tmp_path / "a")
    b = run_search(_job(predictor, trials=25), tmp_path / "b")
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_config_mismatch_is_refused(predictor, tmp_path) -> None:
    run_search(_job(predictor, trials=5), tmp_path)
    with pytest.raises(ValueError, match="exists with another configuration"):
        run_search(_job(predictor, trials=5, budget_ms=9.0), tmp_path)


def test_workers_share_a_journal_no_trial_lost_or_duplicated(predictor, tmp_path) -> None:
    study = run_search(_job(predictor, trials=30, workers=2), tmp_path)
    trials = study.trials
    assert 30 <= len(trials) <= 31
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert (tmp_path / "study.journal").exists()
    assert isinstance(
        open_storage(f"journal:{tmp_path / 'study.journal'}"), optuna.storages.JournalStorage
    )


def test_pareto_mode_with_nsga2(predictor, tmp_path) -> None:
    study = run_search(_job(predictor, mode="pareto", sampler="nsga2", trials=60), tmp_path)
    df = trials_frame(study)
    f = front(df)
    assert len(f) >= 2 and f["feasible"].all()
    assert f["predicted_ms"].is_monotonic_increasing and f["accuracy"].is_monotonic_increasing


def test_cli_search_writes_finalists(predictor, tmp_path, capsys) -> None:
    out = tmp_path / "s"
    argv = [
        "search",
        "--predictor",
        str(predictor),
        "--budget-ms",
        "10",
        "--trials",
        "30",
        "--out",
        str(out),
        "--top-k",
        "3",
        "--accuracy",
        "capacity-proxy",
        "--json",
    ]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["trials"] == 30 and res["accuracy_kind"] == "proxy"
    assert len(res["finalists"]) == 3
    for p in res["finalists"]:
        arch = load_arch(p)
        assert arch.name.startswith("finalist-") and arch.hidden == 384
    assert Path(res["pareto_png"]).read_bytes()[:4] == b"\x89PNG"
    assert "PROXY" in (out / "finalists.md").read_text()
    assert (
        main(["search", "--predictor", str(predictor), "--budget-ms", "-1", "--out", str(out)]) == 2
    )
    assert "budget must be > 0" in capsys.readouterr().err
