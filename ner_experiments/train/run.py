"""One training run: set-up → fit → evaluate → save. ``train.py`` calls :func:`run_training`.

A run writes into its directory: ``config.yaml`` (the resolved config), ``train.log``, ``checkpoints/``
(while training, for resume), ``predictions/validation.conll`` and ``test.conll`` (from the passes that
scored them), ``model/`` (the best model as safetensors, its tokenizer and the composed config),
``README.md`` (the model card) and, last, ``metrics.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig

from ner_experiments.config import to_plain_dict
from ner_experiments.data.check import labels_seen_in_training
from ner_experiments.data.contract import NerData
from ner_experiments.model import load_for_training
from ner_experiments.predictions_file import write_split_predictions
from ner_experiments.publishing.card import framework_versions
from ner_experiments.tracking import Tracker, hparams_of
from ner_experiments.train.fit import build_trainer, raise_if_pruned
from ner_experiments.train.outputs import RunResults, objective_value, run_record, save_run, widget_examples
from ner_experiments.train.run_log import (
    RunTimer,
    configure_progress_bars,
    log_run_header,
    validation_history,
)
from ner_experiments.train.setup import (
    RunContext,
    RunFeatures,
    check_resume_labels,
    hydra_overrides,
    load_checked_data,
    prepare_features,
    save_config,
    start_run,
)
from ner_experiments.train.trainer import NerTrainer, flatten_metrics


def run_training(cfg: DictConfig, run_dir: Path | None = None) -> float:
    """Train and evaluate as configured; returns the objective (by default validation overall F1)."""
    timer = RunTimer()
    ctx = start_run(cfg, run_dir)
    overrides = hydra_overrides()
    configure_progress_bars(cfg.trainer.progress_bars)
    log_run_header(cfg, ctx.run_dir, ctx.precision, overrides)
    data = load_checked_data(cfg)
    check_resume_labels(ctx, data.label_names)
    if ctx.resume_checkpoint:
        save_config(cfg, ctx)  # only now: a rejected resume keeps the run's config.yaml as it was
    tokenizer, model = load_for_training(cfg.model, data.label_names, cfg.paths.cache_dir)
    features = prepare_features(cfg, data, tokenizer, model)
    tracker = Tracker(cfg.logger, ctx.run_dir, ctx.run_name, to_plain_dict(cfg), ctx.is_main, list(cfg.tags))
    state, trainer = "failed", None
    try:
        tracker.start()
        trainer, throughput, sweep_callbacks = build_trainer(
            cfg, ctx, model, tokenizer, features, data.label_names, tracker.report_to
        )
        timer.lap("set-up")
        trainer.train(resume_from_checkpoint=ctx.resume_checkpoint)
        timer.lap("training")
        try:
            raise_if_pruned(sweep_callbacks)
        except optuna.TrialPruned:
            state = "pruned"  # stopped by the sweep's pruner: a success, not a failure, for the tracker
            raise
        results, predicted = evaluate_run(cfg, ctx, trainer, data, features, throughput.summary())
        results.run["wandb_url"] = tracker.url
        results.run["framework_versions"] = framework_versions()
        timer.lap("evaluation")
        hparams = hparams_of(tracker.config, overrides)
        test = flatten_metrics(results.test, "test") if results.test else {}
        test_scalars = {f"test/{k.removeprefix('test_')}": v for k, v in test.items()}
        tracker.summary(results.summary(), hparams, test_scalars, trainer.state.global_step)
        if ctx.is_main:
            for split, labels in predicted.items():
                tokens, gold = data.splits[split]["tokens"], features.eval_sets[split].gold
                write_split_predictions(ctx.run_dir, split, tokens, gold, labels, data.label_names)
            save_run(trainer, tokenizer, cfg, ctx.run_dir, results)
        timer.lap("saving")
        timer.log()
        state = "finished"
        return float(results.objective["value"])
    finally:
        history = trainer.state.log_history if trainer is not None else None
        tracker.finish(failed=state == "failed", state=state, log_history=history)


def evaluate_run(
    cfg: DictConfig,
    ctx: RunContext,
    trainer: NerTrainer,
    data: NerData,
    features: RunFeatures,
    throughput: dict[str, Any],
) -> tuple[RunResults, dict[str, list[list[int]]]]:
    """Score the best model on validation (reused from training's evaluation) and test; the results and
    the word-level label ids predicted per split, from the same passes."""
    scored = {}
    scored["validation"], validation_s = trainer.score_best_validation()
    eval_seconds = {"validation": round(validation_s, 3)}
    if cfg.run_test:
        start = time.perf_counter()
        scored["test"] = trainer.score("test")
        eval_seconds["test"] = round(time.perf_counter() - start, 3)
    validation = scored["validation"].metrics
    test = scored["test"].metrics if "test" in scored else None
    value = objective_value(cfg.objective, {"validation": validation, "test": test})
    state = trainer.state
    train = {
        "runtime_s": throughput["train_seconds"],
        "samples": throughput["samples"],
        "samples_per_second": throughput["samples_per_second"],
        "global_step": state.global_step,
        "epochs": state.epoch,
        "best_checkpoint": state.best_model_checkpoint,
        "num_sentences": len(data.splits["train"]),
        "sentences_split": features.report.windowed["train"],
        "validation_history": validation_history(state.log_history),
    }
    speed = {
        "features": features.report.as_dict(),
        "train": throughput,
        "eval_seconds": eval_seconds,
        "torch_settings": ctx.torch_settings,
    }
    test_split = data.splits["test"]
    extra = {
        "labels_in_training": labels_seen_in_training(data),
        "train_max_length": features.settings["train"].max_length,
        "widget_examples": widget_examples(test_split["tokens"], test_split["tags"], data.label_names),
    }
    run = run_record(cfg, ctx, data, features.settings["validation"].max_length, extra)
    results = RunResults(validation, test, {"name": cfg.objective, "value": value}, train, speed, run)
    return results, {split: s.predicted for split, s in scored.items()}
