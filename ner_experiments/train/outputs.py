"""What a finished run writes: ``model/``, the model card ``README.md``, then ``metrics.json``.

``metrics.json`` is written last, so a run dir without it is not complete. Its content is one
:class:`RunResults`, built once from the trainer and the run's set-up.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ner_experiments.errors import ConfigError
from ner_experiments.hardware import describe_hardware
from ner_experiments.metrics import format_metrics_table
from ner_experiments.model import TRAINING_CONFIG_FILE, remove_loading_flags
from ner_experiments.redaction import redacted_config
from ner_experiments.run_dirs import METRICS_FILE, write_json_atomic
from ner_experiments.train.trainer import OVERALL_KEYS

log = logging.getLogger(__name__)

NUM_WIDGETS = 3
WIDGET_WORDS = (4, 30)  # widget sentences have this many words (inclusive)


@dataclass
class RunResults:
    """The content of ``metrics.json``: scores per split, the objective, and how the run went."""

    validation: dict[str, Any]
    test: dict[str, Any] | None
    objective: dict[str, Any]  # {"name": "validation.overall_f1", "value": 0.91}
    train: dict[str, Any]
    speed: dict[str, Any]
    run: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def summary(self) -> dict[str, float]:
        """Overall scores as ``validation/overall_f1``..., ``subword_f1`` and the error counts
        (``test/errors/missed``...) for the tracker's run summary."""
        from ner_experiments.entity_errors import summary_values

        out = {}
        for split, scores in (("validation", self.validation), ("test", self.test)):
            if scores:
                out.update({f"{split}/{k}": scores[k] for k in (*OVERALL_KEYS, "subword_f1") if k in scores})
                if "errors" in scores:
                    out.update(summary_values(scores["errors"], split))
        return out


def objective_value(objective: str, scores: dict[str, Any]) -> float:
    """``validation.overall_f1`` → that number from ``{"validation": {...}, "test": {...}}``."""
    split, _, key = objective.partition(".")
    node: Any = scores.get(split) or {}
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(
                f"objective={objective}: no such metric (have e.g. validation.overall_f1, test.overall_f1)"
            )
        node = node[part]
    return float(node)


def widget_examples(tokens: list[list[str]], tags: list[list[int]], label_names: list[str]) -> list[str]:
    """A few test sentences with entities, as the Hub widget's examples in the model card."""
    picked: list[str] = []
    lo, hi = WIDGET_WORDS
    for words, ids in zip(tokens, tags, strict=True):
        text = " ".join(words)
        if lo <= len(words) <= hi and any(label_names[t] != "O" for t in ids) and text not in picked:
            picked.append(text)
        if len(picked) >= NUM_WIDGETS:
            break
    return picked


def run_record(
    cfg: DictConfig, ctx: Any, data: Any, max_length: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """The ``run`` part of the results: what was trained on what, where and how."""
    return {
        "run_dir": str(ctx.run_dir),
        "run_name": ctx.run_name,
        "model": cfg.model.name_or_path or cfg.model.name,
        "dataset": data.source,
        "language": data.language,
        "label_names": data.label_names,
        "max_length": max_length,
        "hardware": describe_hardware(),
        "precision": ctx.precision,
        "seed": cfg.seed,
        "started_at": datetime.fromtimestamp(ctx.started, timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - ctx.started, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "random_init_model": cfg.model.source == "tiny",
        **extra,
    }


def save_run(trainer: Any, tokenizer: Any, cfg: DictConfig, run_dir: Path, results: RunResults) -> None:
    """Write the model, the card and ``metrics.json`` (last), log the score tables, then push if asked."""
    _save_model(trainer, tokenizer, cfg, run_dir)
    _write_card(cfg, run_dir, results)
    write_json_atomic(run_dir / METRICS_FILE, results.as_dict())  # the run is complete from here on
    log_score_tables(cfg, results, run_dir)
    if cfg.hub.push:
        from ner_experiments.publishing.push import push_run

        push_run(run_dir, cfg.hub)


def log_score_tables(cfg: DictConfig, results: RunResults, run_dir: Path) -> None:
    from ner_experiments.entity_errors import format_error_table

    for split, scores in (("validation", results.validation), ("test", results.test)):
        if scores:
            log.info("\n%s", format_metrics_table(f"{split} ({scores['num_sentences']} sentences)", scores))
            if "errors" in scores:
                log.info("\n%s", format_error_table(f"{split} entities by outcome", scores["errors"]))
    log.info("objective %s = %.4f; run dir: %s", cfg.objective, results.objective["value"], run_dir)
    if cfg.model.source == "tiny":
        log.info(
            "note: model=tiny is a small randomly initialised BERT; these scores only show the pipeline works"
        )


def _save_model(trainer: Any, tokenizer: Any, cfg: DictConfig, run_dir: Path) -> None:
    """The best model (safetensors), its tokenizer and the composed config, into ``model/`` at once."""
    model_dir, tmp_dir = run_dir / "model", run_dir / "model.tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    trainer.save_model(str(tmp_dir))
    tokenizer.save_pretrained(str(tmp_dir))
    remove_loading_flags(tmp_dir)
    # Interpolations kept, so ner-evaluate's dataset overrides re-derive the keys that follow from them;
    # secrets redacted, and the sweep's plumbing (optuna.*) left out: it means nothing outside the trial.
    saved = redacted_config(cfg, resolve=False)
    if "optuna" in saved:
        saved.optuna = {key: None for key in saved.optuna}
    OmegaConf.save(saved, tmp_dir / TRAINING_CONFIG_FILE)
    (tmp_dir / "training_args.bin").unlink(
        missing_ok=True
    )  # the published model is safetensors and YAML only
    shutil.rmtree(model_dir, ignore_errors=True)
    os.replace(tmp_dir, model_dir)


def _write_card(cfg: DictConfig, run_dir: Path, results: RunResults) -> None:
    """The model card (README.md); a problem with it is logged and never loses the trained run."""
    from ner_experiments.publishing.card import write_model_card

    try:
        write_model_card(run_dir, cfg, results.as_dict())
    except Exception:
        log.exception(
            "could not write the model card; the model and metrics are saved, run ner-publish to retry"
        )
