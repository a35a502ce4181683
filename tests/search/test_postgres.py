"""The search on a real PostgreSQL server (Debian's package), started by the test on 127.0.0.1.

Skips, saying why, where PostgreSQL's binaries or the Python driver are missing."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

from canao.search.study import SearchConfig, SearchJob, run_search
from canao.space import ArchSpec


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return Path(dirs[-1]) if dirs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {res.stderr.strip()[-500:]}")


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg2", reason="psycopg2 (the PostgreSQL driver) is not installed")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    # not under pytest's tmp folder: the postgres user must be able to reach it
    root = Path(tempfile.mkdtemp(prefix="canao-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "canao", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    opts = f"-h 127.0.0.1 -p {port} -k {root}"
    subprocess.run(
        [
            *as_user,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg2://canao@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_workers_on_postgresql_resume_without_loss(predictor, postgres_url, tmp_path) -> None:
    base = ArchSpec.named("minilm-l6-h384")
    cfg = SearchConfig(budget_ms=10.0, trials=20, workers=2, storage=postgres_url)
    study = run_search(SearchJob(cfg, base.to_json(), 128, str(predictor)), tmp_path)
    assert len(study.trials) in (20, 21)
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    # the same command with more trials resumes the same study on the server
    more = SearchConfig(budget_ms=10.0, trials=30, workers=1, storage=postgres_url)
    again = run_search(SearchJob(more, base.to_json(), 128, str(predictor)), tmp_path)
    assert len(again.trials) in (30, 31)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in again.trials)
    loaded = optuna.load_study(study_name=cfg.study_name, storage=postgres_url)
    assert len(loaded.trials) == len(again.trials)
