"""The Trainer of a run: arguments, collator, callbacks (throughput, sweep pruning) and our evaluation."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from transformers import DataCollatorForTokenClassification

from ner_experiments.hardware import effective_pad_to_multiple_of
from ner_experiments.throughput import CountingCollator, TrainThroughputCallback
from ner_experiments.train.arguments import build_training_arguments
from ner_experiments.train.eval_schedule import EvaluateWithinEpochs
from ner_experiments.train.run_log import use_log_lines_for_progress
from ner_experiments.train.setup import RunContext, RunFeatures
from ner_experiments.train.stop_callback import StopCallback
from ner_experiments.train.trainer import NerTrainer


def build_trainer(
    cfg: DictConfig,
    ctx: RunContext,
    model: Any,
    tokenizer: Any,
    features: RunFeatures,
    label_names: list[str],
    report_to: list[str],
) -> tuple[NerTrainer, TrainThroughputCallback, list[Any]]:
    """The configured :class:`NerTrainer`, its throughput counter and the sweep's callbacks (if any)."""
    pad_multiple = effective_pad_to_multiple_of(cfg.trainer.pad_to_multiple_of, cfg.trainer.use_cpu)
    collator = CountingCollator(
        DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_multiple)
    )
    throughput = TrainThroughputCallback(collator)
    throughput.resume_from(ctx.resume_checkpoint)
    sweep_callbacks = _sweep_callbacks(cfg)
    k = cfg.trainer.evals_per_epoch
    within_epochs = [EvaluateWithinEpochs(k)] if k > 1 else []
    trainer = NerTrainer(
        model=model,
        args=build_training_arguments(cfg, ctx.run_dir, ctx.precision, report_to, ctx.run_name),
        train_dataset=features.train,
        eval_dataset=features.eval_sets["validation"].features,  # scored by NerTrainer.evaluate
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[*within_epochs, *sweep_callbacks, throughput, StopCallback()],
        eval_sets=features.eval_sets,
        label_names=label_names,
        strict_iob2=cfg.metrics.strict_iob2,
        train_sampling=cfg.trainer.train_sampling,
    )
    use_log_lines_for_progress(trainer)
    return trainer, throughput, sweep_callbacks


def _sweep_callbacks(cfg: DictConfig) -> list[Any]:
    if not cfg.optuna.storage:
        return []
    from ner_experiments.sweeping.trial_reporting import build_trial_callback

    callback = build_trial_callback(cfg)
    return [callback] if callback is not None else []


def raise_if_pruned(callbacks: list[Any]) -> None:
    """End a trial the study's pruner stopped as PRUNED, before it tests and publishes."""
    if callbacks:
        from ner_experiments.sweeping.trial_reporting import raise_if_pruned as raise_pruned

        raise_pruned(callbacks)
