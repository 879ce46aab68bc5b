"""Everything a run needs before training: its directory, seed and precision, checked data, features."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from datasets import Dataset
from omegaconf import DictConfig, OmegaConf
from transformers import set_seed

from ner_experiments.checkpoints import resumable_checkpoint
from ner_experiments.data.check import check_data
from ner_experiments.data.contract import NerData
from ner_experiments.data.readers import load_ner_data
from ner_experiments.errors import ConfigError
from ner_experiments.features import FeatureSettings
from ner_experiments.features.build import (
    FeatureBuildReport,
    build_features,
    read_columns,
)
from ner_experiments.hardware import configure_torch_for_speed, resolve_precision
from ner_experiments.redaction import redact_text, redacted_config
from ner_experiments.run_dirs import find_run_to_resume, log_to_run_dir
from ner_experiments.run_lock import claim_run_dir
from ner_experiments.train.trainer import EvalSet

log = logging.getLogger(__name__)

TRAIN_COLUMNS = ["input_ids", "attention_mask", "token_type_ids", "labels", "length"]


@dataclass
class RunContext:
    """Where a run writes and how it computes, decided once at start-up."""

    run_dir: Path
    precision: str  # fp32 | bf16 | fp16, resolved from trainer.precision and the hardware
    run_name: str
    resume_checkpoint: str | None = None
    is_main: bool = True
    started: float = field(default_factory=time.time)
    torch_settings: dict[str, object] = field(default_factory=dict)


def _hydra_run_dir_and_overrides() -> tuple[Path, list[str]]:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        hc = HydraConfig.get()
        return Path(hc.runtime.output_dir), list(hc.overrides.task)
    return Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S_run"), []


def hydra_overrides() -> list[str]:
    """The overrides this run was started with (Hydra's task overrides; none outside Hydra)."""
    return _hydra_run_dir_and_overrides()[1]


def default_run_name(cfg: DictConfig) -> str:
    t = cfg.trainer
    return redact_text(
        cfg.logger.run_name
        or f"{cfg.model.name}-{cfg.dataset.name}-lr{t.learning_rate:g}-ep{t.num_train_epochs:g}"
    )


def start_run(cfg: DictConfig, run_dir: Path | None = None) -> RunContext:
    """Decide where the run writes (a new dir, or the run being resumed), seed everything and set torch
    up for the hardware. The config was validated by the entry point (``cli.run_task``)."""
    hydra_dir, overrides = _hydra_run_dir_and_overrides()
    ctx = RunContext(
        run_dir=run_dir or hydra_dir,
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.use_cpu),
        run_name=default_run_name(cfg),
        is_main=int(os.environ.get("RANK", "0")) == 0,
    )
    if cfg.resume:
        previous = find_run_to_resume(str(cfg.resume), Path(cfg.paths.output_dir), overrides)
        if ctx.is_main:
            claim_run_dir(previous, "resume")  # refused while another process trains in it
            log_to_run_dir(previous, replaced=hydra_dir)
        ctx.run_dir, ctx.resume_checkpoint = previous, str(resumable_checkpoint(previous, ctx.is_main))
        log.info("Resuming %s from %s; results are written there", previous, ctx.resume_checkpoint)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    ctx.torch_settings = configure_torch_for_speed(cfg.trainer.use_cpu)
    if not ctx.resume_checkpoint:
        save_config(cfg, ctx)
    return ctx


def save_config(cfg: DictConfig, ctx: RunContext) -> None:
    """``config.yaml``: the resolved config a person reads, secrets redacted (the model folder keeps the
    composed one)."""
    if ctx.is_main:
        OmegaConf.save(redacted_config(cfg, resolve=True), ctx.run_dir / "config.yaml")


def load_checked_data(cfg: DictConfig) -> NerData:
    """The configured data set, read and checked as ``ner-data check`` checks it: warnings are logged,
    a data set that cannot be trained on stops the run with every problem in one error."""
    data = load_ner_data(cfg.dataset, cfg.paths.cache_dir)
    check_data(data).ensure_trainable(log)
    log.info(
        "Data %s: %s sentences, labels %s",
        data.source,
        ", ".join(f"{k} {len(v)}" for k, v in data.splits.items()),
        data.label_names,
    )
    return data


def check_resume_labels(ctx: RunContext, label_names: list[str]) -> None:
    """A resumed run must have the label set it was trained with."""
    if not ctx.resume_checkpoint:
        return
    from transformers import AutoConfig

    saved = AutoConfig.from_pretrained(ctx.resume_checkpoint)
    saved_names = [saved.id2label[i] for i in sorted(saved.id2label)]
    if saved_names != label_names:
        raise ConfigError(
            f"cannot resume from {ctx.resume_checkpoint}: its label set {saved_names} differs from the data's "
            f"{label_names}; resume with the same dataset settings, or start a new run without resume"
        )


@dataclass
class RunFeatures:
    """Training features, the evaluation sets, and how they were built."""

    train: Dataset
    eval_sets: dict[str, EvalSet]
    settings: dict[str, FeatureSettings]
    report: FeatureBuildReport


def prepare_features(cfg: DictConfig, data: NerData, tokenizer: Any, model: Any) -> RunFeatures:
    """Features of every split (cached), with the lengths the model and ``trainer`` settings allow."""
    settings = FeatureSettings.for_run(cfg, tokenizer, model.config)
    features, report = build_features(data, tokenizer, settings, cfg.paths.cache_dir)
    eval_sets = {
        split: EvalSet(features[split], read_columns(data.splits[split], ["tags"])["tags"])
        for split in ("validation", "test")
    }
    train = features["train"]
    columns = [c for c in TRAIN_COLUMNS if c in train.column_names]
    return RunFeatures(train.select_columns(columns), eval_sets, settings, report)
