"""The search: an Optuna study whose trials are ArchSpecs scored by an accuracy estimate and a
predicted latency; the latency budget is a constraint (``predicted ms - budget <= 0`` is
feasible; Optuna 5's ``Trial.set_constraint``, which replaced ``constraints_func``).

Modes: ``max-acc`` (maximise accuracy; infeasible trials are never the best) and ``pareto``
(maximise accuracy, minimise predicted latency; NSGA-II or TPE, both constraint-aware). The
study lives in a storage URL: an SQLite file by default, a JournalStorage file for several
local worker processes, or PostgreSQL/MySQL for workers on many machines. Running the same
search again resumes it: only the missing trials run.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from canao.search.accuracy import AccuracyEstimator
from canao.search.space import SearchSpace

MODES = ("max-acc", "pareto")
SAMPLERS = ("tpe", "nsga2", "random")


@dataclass(frozen=True)
class SearchConfig:
    budget_ms: float
    trials: int = 1000
    mode: str = "max-acc"
    sampler: str = "tpe"
    seed: int = 0
    study_name: str = "canao-search"
    storage: str | None = None
    workers: int = 1
    threads: int = 2

    def __post_init__(self) -> None:
        if self.budget_ms <= 0:
            raise ValueError("the latency budget must be > 0 ms")
        if self.trials < 1 or self.workers < 1:
            raise ValueError("trials and workers must be >= 1")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}")
        if self.mode == "max-acc" and self.sampler == "nsga2":
            raise ValueError("nsga2 is multi-objective: use it with --mode pareto")


def make_sampler(cfg: SearchConfig, worker: int = 0) -> Any:
    import optuna

    seed = cfg.seed + worker
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=20)


def storage_spec(cfg: SearchConfig, out: Path) -> str:
    """Where the study lives, as a string a worker process can open: a database URL, or
    ``journal:<file>``. Default: SQLite in ``out``, or a journal file there for K workers."""
    if cfg.storage:
        if cfg.storage.endswith(".journal") and not cfg.storage.startswith("journal:"):
            return "journal:" + cfg.storage
        return cfg.storage
    out.mkdir(parents=True, exist_ok=True)
    if cfg.workers > 1:
        return f"journal:{out / 'study.journal'}"
    return f"sqlite:///{out / 'study.db'}"


def open_storage(spec: str) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if spec.startswith("journal:"):
        return JournalStorage(JournalFileBackend(spec.removeprefix("journal:")))
    if spec.startswith("sqlite:///"):
        return spec
    return optuna.storages.RDBStorage(spec, heartbeat_interval=60, grace_period=120)


@dataclass(frozen=True)
class SearchJob:
    """Everything a worker process needs to rebuild the objective (picklable)."""

    cfg: SearchConfig
    base: str  # ArchSpec JSON
    ffn_step: int
    predictor: str  # folder written by `canao train`
    accuracy: str = "capacity-proxy"
    elastic: str | None = None  # elastic base folder, for the inherited accuracy

    def space(self) -> SearchSpace:
        from canao.space import ArchSpec

        return SearchSpace(ArchSpec.from_json(self.base), ffn_step=self.ffn_step)

    def objective(self) -> Objective:
        from canao.predictors.predictor import LatencyPredictor
        from canao.search.accuracy import make_estimator

        space = self.space()
        predictor = LatencyPredictor.load(Path(self.predictor))
        estimator = make_estimator(self.accuracy, space.base, self.elastic)
        return Objective(space, estimator, predictor, self.cfg)


class Objective:
    """Maps a trial to an ArchSpec and scores it; records everything as trial attributes."""

    def __init__(
        self, space: SearchSpace, accuracy: AccuracyEstimator, predictor: Any, cfg: SearchConfig
    ) -> None:
        self.space, self.accuracy, self.predictor, self.cfg = space, accuracy, predictor, cfg

    def __call__(self, trial: Any) -> float | tuple[float, float]:
        arch = self.space.suggest(trial)
        ms = float(self.predictor.predict_arch(arch, self.cfg.threads))
        acc = self.accuracy.estimate(arch)
        trial.set_user_attr("predicted_ms", ms)
        trial.set_user_attr("accuracy", acc)
        trial.set_user_attr("accuracy_kind", self.accuracy.kind)
        trial.set_user_attr("flops", arch.flops)
        trial.set_user_attr("params", arch.params)
        trial.set_user_attr("arch", arch.to_json())
        trial.set_user_attr("constraint", ms - self.cfg.budget_ms)
        trial.set_constraint("latency", ms - self.cfg.budget_ms)  # what the samplers read
        return acc if self.cfg.mode == "max-acc" else (acc, ms)


def create_study(cfg: SearchConfig, storage: Any, worker: int = 0) -> Any:
    import optuna

    directions: list[Any] = ["maximize"] if cfg.mode == "max-acc" else ["maximize", "minimize"]
    study = optuna.create_study(
        study_name=cfg.study_name,
        storage=storage,
        sampler=make_sampler(cfg, worker),
        directions=directions,
        load_if_exists=True,
    )
    stored = study.user_attrs.get("config")
    mine = {k: v for k, v in asdict(cfg).items() if k not in ("workers", "storage", "trials")}
    if stored is None:
        study.set_user_attr("config", mine)
    elif stored != mine:
        raise ValueError(
            f"study {cfg.study_name!r} exists with another configuration ({stored}); "
            "use another --study-name or --out"
        )
    return study


def finished(study: Any) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=states))


def run_worker(job: SearchJob, storage: str, worker: int, progress: bool = False) -> int:
    """Run trials until the study holds ``trials`` finished ones; returns how many ran here."""
    import optuna
    from optuna.study import MaxTrialsCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = job.cfg
    study = create_study(cfg, open_storage(storage), worker)
    todo = cfg.trials - finished(study)
    if todo <= 0:
        return 0
    before = finished(study)
    study.optimize(
        job.objective(),
        n_trials=todo,
        callbacks=[MaxTrialsCallback(cfg.trials, states=None)],
        show_progress_bar=progress,
    )
    return finished(study) - before


def run_search(job: SearchJob, out: Path) -> Any:
    """Run (or resume) the search with ``cfg.workers`` processes; returns the study."""
    cfg = job.cfg
    storage = storage_spec(cfg, out)
    create_study(cfg, open_storage(storage))  # one creator, before any workers race
    if cfg.workers == 1:
        run_worker(job, storage, 0, progress=True)
    else:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=run_worker, args=(job, storage, w)) for w in range(cfg.workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [p.exitcode for p in procs if p.exitcode]
        if bad:
            raise RuntimeError(f"{len(bad)} search worker(s) failed (exit codes {bad})")
    return create_study(cfg, open_storage(storage))
