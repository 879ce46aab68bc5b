"""Test helpers: the repo's paths, small data sets on disk in the layouts the readers accept, and one
runner for the project's scripts in a subprocess (offline, no W&B, no tokens).

Shared by every test file: ``from tests.helpers import ...``. Trained runs shared by several files are
session fixtures in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_PY = REPO_ROOT / "train.py"
SAMPLE_DATA_DIR = REPO_ROOT / "ner_experiments" / "sample_data"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"  # real data sets, where this checkout has them

# A sentence is (words, IOB2 tag names).
Sentence = tuple[list[str], list[str]]

TINY_SENTENCES: list[Sentence] = [
    (["John", "Smith", "lives", "in", "Paris", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (["Mary", "works", "at", "Acme", "Corp", "."], ["B-PER", "O", "O", "B-ORG", "I-ORG", "O"]),
    (["রবীন্দ্রনাথ", "ঠাকুর", "কলকাতায়", "জন্মগ্রহণ", "করেন", "।"], ["B-PER", "I-PER", "B-LOC", "O", "O", "O"]),
    (["The", "weather", "is", "nice", "today", "."], ["O", "O", "O", "O", "O", "O"]),
]


def make_conll_dir(
    folder: str | os.PathLike,
    splits: Mapping[str, Sequence[Sentence]] | None = None,
    separator: str = "\t",
    suffix: str = ".conll",
) -> Path:
    """Write ``<folder>/<split><suffix>`` as 2-column CoNLL (``word<sep>tag``, blank line between sentences).

    ``splits`` maps a split name (train / validation / test) to its sentences; by default all three get
    :data:`TINY_SENTENCES`. Returns the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if splits is None:
        splits = {name: TINY_SENTENCES for name in ("train", "validation", "test")}
    for split, sentences in splits.items():
        lines: list[str] = []
        for words, tags in sentences:
            lines += [f"{w}{separator}{t}" for w, t in zip(words, tags, strict=True)]
            lines.append("")
        (folder / f"{split}{suffix}").write_text("\n".join(lines), encoding="utf-8")
    return folder


def make_jsonl_dir(
    folder: str | os.PathLike,
    splits: Mapping[str, Sequence[tuple[Sequence[str], Sequence[object]]]] | None = None,
    tags_key: str = "ner_tags",
) -> Path:
    """Write ``<folder>/<split>.jsonl``, one ``{"tokens": [...], "<tags_key>": [...]}`` per line.

    Lengths are not checked, so a test can write a token/tag length mismatch on purpose.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if splits is None:
        splits = {name: TINY_SENTENCES for name in ("train", "validation", "test")}
    for split, sentences in splits.items():
        rows = [json.dumps({"tokens": list(w), tags_key: list(t)}, ensure_ascii=False) for w, t in sentences]
        (folder / f"{split}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def write_hub_layout(
    folder: str | os.PathLike,
    config_name: str,
    splits: Mapping[str, Sequence[Sentence]],
    label_names: Sequence[str],
) -> Path:
    """Write a data set in the file layout of a Hub data set repo, with ``ner_tags`` as ClassLabel.

    ``<folder>/<config_name>/<split>-00000-of-00001.parquet`` per split, plus a ``README.md`` whose
    YAML header declares the config's ``data_files`` (like unimelb-nlp/wikiann), so
    ``datasets.load_dataset(folder, config_name)`` reads it as it would the Hub repo. Tags are given as
    names and stored as ids of ``label_names``. Calling it again with another ``config_name`` adds a config.
    """
    import datasets

    folder = Path(folder)
    (folder / config_name).mkdir(parents=True, exist_ok=True)
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=list(label_names))),
            "langs": datasets.Sequence(datasets.Value("string")),
        }
    )
    index = {name: i for i, name in enumerate(label_names)}
    for split, sentences in splits.items():
        ds = datasets.Dataset.from_dict(
            {
                "tokens": [list(words) for words, _ in sentences],
                "ner_tags": [[index[t] for t in tags] for _, tags in sentences],
                "langs": [[config_name] * len(words) for words, _ in sentences],
            },
            features=features,
        )
        ds.to_parquet(str(folder / config_name / f"{split}-00000-of-00001.parquet"))
    configs = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*-00000-of-*.parquet")))
    header = ["---", "configs:"]
    for name in configs:
        header += [f"- config_name: {name}", "  data_files:"]
        found = [p.name.split("-00000-of-")[0] for p in (folder / name).glob("*-00000-of-*.parquet")]
        order = {"train": 0, "validation": 1, "test": 2}
        for split in sorted(found, key=lambda s: (order.get(s, 3), s)):
            header += [f"  - split: {split}", f"    path: {name}/{split}-*"]
    header += ["---", "", "A small NER data set in the Hub layout, written by tests/helpers.py.", ""]
    (folder / "README.md").write_text("\n".join(header), encoding="utf-8")
    return folder


def sample_sentences(language: str, split: str) -> list[tuple[list[str], list[str]]]:
    """The shipped sample's sentences of one split, as (words, IOB2 tag names)."""
    path = SAMPLE_DATA_DIR / language / f"{split}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["tokens"], row["ner_tags"]) for row in rows]


# The shared tiny training run (the ``tiny_run`` fixture): the quickstart for two epochs (a checkpoint
# after each), through training's end-of-run hub hook in dry-run mode (model card, staged upload folder).
TINY_REPO_ID = "me/tiny-ner"
TINY_RUN_OVERRIDES = (
    "experiment=quickstart",
    "trainer.num_train_epochs=2",
    "hub=push",
    f"hub.repo_id={TINY_REPO_ID}",
    "hub.dry_run=true",
)


# --- Running the project's scripts ---------------------------------------------------------------

# Secrets never reach a test subprocess; the Hub and W&B are off unless a test says otherwise.
_DROPPED_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY")
_TEST_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore",
}


def script_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a test subprocess: this one's, offline and without tokens, then ``env``
    (a value of None removes that variable)."""
    full = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    full.update(_TEST_ENV)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return full


def script_command(script: str | os.PathLike, *args: str) -> list[str]:
    """``python <file> args`` for a path ending in ``.py``, else ``python -m <module> args``."""
    if str(script).endswith(".py"):
        return [sys.executable, str(script), *args]
    return [sys.executable, "-m", str(script), *args]


def run_script(
    script: str | os.PathLike,
    *args: str,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run a script file or a module (see :func:`script_command`) to the end, capturing its output.

    Runs in the repo root unless ``cwd`` is given, with :func:`script_env`'s environment.
    """
    return subprocess.run(
        script_command(script, *args),
        cwd=str(cwd or REPO_ROOT),
        env=script_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_train(
    *overrides: str,
    cwd: str | os.PathLike | None = None,
    timeout: float = 900,
    env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python train.py <overrides>`` through :func:`run_script`."""
    return run_script(TRAIN_PY, *overrides, env=env, cwd=cwd, timeout=timeout)


# --- Looking at what a run left ------------------------------------------------------------------


def run_dirs_under(output_dir: str | os.PathLike) -> list[Path]:
    """Every run directory (one holding ``.hydra/``) under ``output_dir``."""
    return sorted(p.parent for p in Path(output_dir).glob("**/.hydra"))


def only_run_dir(output_dir: str | os.PathLike) -> Path:
    """The one run directory under ``output_dir`` (fails the test when there are none or several)."""
    dirs = run_dirs_under(output_dir)
    assert len(dirs) == 1, f"expected one run dir under {output_dir}, found {dirs}"
    return dirs[0]


def looks_complete(output_dir: str | os.PathLike) -> list[Path]:
    """Files under ``output_dir`` that would make a failed run look finished (metrics.json, model/)."""
    root = Path(output_dir)
    return sorted([*root.glob("**/metrics.json"), *[p for p in root.glob("**/model") if p.is_dir()]])


def snapshot(folder: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time (to check nothing changed)."""
    root = Path(folder)
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def kill_after_first_checkpoint(overrides: list[str], output_dir: Path) -> Path:
    """Start train.py, SIGKILL it (with its whole process group) once its first checkpoint is complete."""
    proc = subprocess.Popen(
        script_command(TRAIN_PY, *overrides),
        cwd=TRAIN_PY.parent,
        env=script_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 400
    try:
        while time.time() < deadline:
            states = list(output_dir.glob("**/checkpoints/checkpoint-*/trainer_state.json"))
            if states:
                try:
                    json.loads(states[0].read_text())  # written last: the checkpoint is complete
                    break
                except ValueError:
                    pass
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint appeared")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return states[0].parent
