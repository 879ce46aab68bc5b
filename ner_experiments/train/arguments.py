"""The run's ``TrainingArguments``, built in one place from the config and the resolved precision."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig
from transformers import TrainingArguments

from ner_experiments.run_dirs import CHECKPOINTS_DIR
from ner_experiments.train.run_log import progress_bars_enabled


def several_processes() -> bool:
    """Launched by torchrun (or another launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def build_training_arguments(
    cfg: DictConfig, run_dir: Path, precision: str, report_to: list[str], run_name: str
) -> TrainingArguments:
    """Every Trainer setting of a run; ``precision`` is ``hardware.resolve_precision``'s answer."""
    t = cfg.trainer
    split, _, metric = cfg.objective.partition(".")
    best_metric = metric if split == "validation" else "overall_f1"
    # A sweep trial is never resumed (a lost one is run again from the start): it keeps only the best model.
    # Several evaluations per epoch write a checkpoint only when one is a new best.
    trial = bool(cfg.optuna.storage)
    save_strategy = "best" if trial or t.evals_per_epoch > 1 else t.eval_strategy
    return TrainingArguments(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # a float below 1 is read as a ratio of the total steps
        lr_scheduler_type=t.lr_scheduler_type,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        max_grad_norm=t.max_grad_norm,
        eval_strategy=t.eval_strategy,
        eval_steps=t.eval_steps,
        save_strategy=save_strategy,
        save_steps=t.eval_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model=best_metric,
        greater_is_better="loss" not in best_metric,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=t.use_cpu or (precision == "bf16" and not torch.cuda.is_available()),
        optim=t.optim,
        torch_compile=t.torch_compile,
        # length_buckets is our sampler (NerTrainer._get_train_sampler), not a transformers strategy
        train_sampling_strategy="random" if t.train_sampling == "length_buckets" else t.train_sampling,
        length_column_name="length",
        dataloader_num_workers=t.dataloader_num_workers,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=report_to or "none",
        run_name=run_name,
        remove_unused_columns=False,
        save_only_model=trial,
        ddp_backend="gloo" if several_processes() and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=False,
        disable_tqdm=not progress_bars_enabled(t.progress_bars),
    )
