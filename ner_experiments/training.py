"""One training run: data → features → model → Trainer → best model, metrics.json and the objective.

``run_training`` is what ``train.py`` calls after Hydra has composed the config. It writes into the
run directory: ``config.yaml`` (the resolved config), ``checkpoints/`` (while training, for resume),
``model/`` (the best model as safetensors, tokenizer, label names in its config), ``metrics.json`` and
``README.md`` (the model card). ``metrics.json`` is written last, so a run dir without it is not complete.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from omegaconf import DictConfig, OmegaConf
from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments, set_seed

from ner_experiments.config import to_plain_dict, validate_config
from ner_experiments.data.contract import NerData
from ner_experiments.data.readers import load_ner_data
from ner_experiments.dropout_masks import use_cpu_dropout
from ner_experiments.embedding_updates import (
    RowSparseAdamW,
    clip_grad_norm_with_sparse,
    use_sparse_embedding_gradient,
)
from ner_experiments.errors import ConfigError
from ner_experiments.evaluation import evaluate_split
from ner_experiments.feature_cache import build_features_cached
from ner_experiments.features import count_split_sentences, read_columns, training_window
from ner_experiments.hardware import (
    configure_torch_for_speed,
    describe_hardware,
    effective_pad_to_multiple_of,
    resolve_precision,
    runs_on_gpu,
)
from ner_experiments.metrics import format_metrics_table
from ner_experiments.modeling import (
    build_tiny_model,
    cached_tiny_tokenizer,
    load_model,
    load_tokenizer,
    resolve_max_length,
)
from ner_experiments.run_dirs import (
    CHECKPOINTS_DIR,
    METRICS_FILE,
    find_run_to_resume,
    latest_checkpoint,
    write_json_atomic,
)
from ner_experiments.sampling import LengthBucketSampler
from ner_experiments.throughput import CountingCollator, TrainThroughputCallback
from ner_experiments.tracking import Tracker

log = logging.getLogger(__name__)

TRAIN_COLUMNS = ["input_ids", "attention_mask", "token_type_ids", "labels", "length"]
OVERALL_KEYS = ("overall_precision", "overall_recall", "overall_f1", "overall_accuracy")


@dataclass
class EvalSet:
    """A split ready for word-level evaluation."""

    features: Dataset
    gold: list[list[int]]


@dataclass
class RunContext:
    run_dir: Path
    resume_checkpoint: str | None = None
    notes: list[str] = field(default_factory=list)


class NerTrainer(Trainer):
    """A Trainer whose evaluation scores at word level (seqeval) from our features, not sub-word logits."""

    def __init__(
        self,
        *args: Any,
        eval_sets: dict[str, EvalSet],
        label_names: list[str],
        strict_iob2: bool,
        autocast_dtype: torch.dtype | None,
        train_sampling: str = "random",
        sparse_gradients: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.train_sampling = train_sampling
        self.sparse_gradients = sparse_gradients
        self.eval_sets = eval_sets
        self.label_names = label_names
        self.strict_iob2 = strict_iob2
        self.autocast_dtype = autocast_dtype
        self.last_eval: dict[str, Any] = {}
        # global step -> (metrics, seconds) of each validation pass in this process, so the best
        # checkpoint's scores are not computed a second time after training.
        self.eval_history: dict[int, tuple[dict[str, Any], float]] = {}

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.train_sampling != "length_buckets" or dataset is None:
            return super()._get_train_sampler(train_dataset)
        return LengthBucketSampler(
            read_columns(dataset, ["length"])["length"],
            self.args.train_batch_size,
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
        )

    def _clip_grad_norm(self, model: Any) -> Any:
        if not self.sparse_gradients:
            return super()._clip_grad_norm(model)
        return clip_grad_norm_with_sparse(model.parameters(), self.args.max_grad_norm)

    def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
        if grad_norm is None and self.sparse_gradients:
            grad_norm = clip_grad_norm_with_sparse(model.parameters(), float("inf"))
        return super()._get_grad_norm(model, grad_norm=grad_norm)

    def score(self, split: str, show_progress: bool = True) -> dict[str, Any]:
        eval_set = self.eval_sets[split]
        pad_id = getattr(self.processing_class, "pad_token_id", 0) or 0
        return evaluate_split(
            self.model,
            eval_set.features,
            eval_set.gold,
            self.label_names,
            batch_size=self.args.per_device_eval_batch_size,
            pad_token_id=pad_id,
            strict_iob2=self.strict_iob2,
            autocast_dtype=self.autocast_dtype,
            show_progress=show_progress,
            description=f"evaluate {split}",
        )

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        start = time.perf_counter()
        metrics = self.score("validation")
        self.last_eval = metrics
        seconds = time.perf_counter() - start
        self.eval_history[self.state.global_step] = (metrics, seconds)
        flat = flatten_metrics(metrics, metric_key_prefix)
        flat[f"{metric_key_prefix}_runtime"] = round(seconds, 4)
        self.log(flat)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, flat)
        return flat

    def score_best_validation(self) -> tuple[dict[str, Any], float]:
        """Validation metrics of the model training ended with (the best checkpoint), and the seconds the
        pass took: reused from the evaluation that chose it when this process ran it, else computed."""
        best = self.state.best_model_checkpoint
        step = int(str(best).rsplit("-", 1)[-1]) if best else self.state.global_step
        if step in self.eval_history:
            metrics, seconds = self.eval_history[step]
            return dict(metrics), seconds
        start = time.perf_counter()
        metrics = self.score("validation")
        return metrics, time.perf_counter() - start


def flatten_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """``{"overall_f1": .9, "per_type": {"PER": {"f1": .8}}}`` → ``{"eval_overall_f1": .9, "eval_PER_f1": .8}``."""
    flat = {f"{prefix}_{k}": float(metrics[k]) for k in OVERALL_KEYS}
    for kind, row in metrics.get("per_type", {}).items():
        flat[f"{prefix}_{kind}_f1"] = float(row["f1"])
    return flat


def objective_value(objective: str, results: dict[str, Any]) -> float:
    split, _, key = objective.partition(".")
    node: Any = results.get(split, {})
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(
                f"objective={objective}: no such metric (have e.g. validation.overall_f1, test.overall_f1)"
            )
        node = node[part]
    return float(node)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _several_processes() -> bool:
    """Launched by torchrun (or another launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _hydra_run_dir_and_overrides() -> tuple[Path, list[str]]:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        hc = HydraConfig.get()
        return Path(hc.runtime.output_dir), list(hc.overrides.task)
    return Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S_run"), []


def prepare_run(
    cfg: DictConfig, run_dir: Path | None = None, overrides: list[str] | None = None
) -> RunContext:
    """Validate the config and decide where the run writes (a new dir, or the one being resumed)."""
    validate_config(cfg)
    hydra_dir, hydra_overrides = _hydra_run_dir_and_overrides()
    run_dir = run_dir or hydra_dir
    overrides = hydra_overrides if overrides is None else overrides
    ctx = RunContext(run_dir=run_dir)
    if cfg.resume:
        previous = find_run_to_resume(str(cfg.resume), Path(cfg.paths.output_dir), overrides)
        checkpoint = latest_checkpoint(previous)
        ctx.run_dir, ctx.resume_checkpoint = previous, str(checkpoint)
        log.info("Resuming %s from %s; results are written there", previous, checkpoint)
        if previous.resolve() != hydra_dir.resolve() and hydra_dir.exists():
            (hydra_dir / "resumed_run.txt").write_text(f"{previous}\n")
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    return ctx


def _check_resume_labels(checkpoint: str, label_names: list[str]) -> None:
    from transformers import AutoConfig

    saved = AutoConfig.from_pretrained(checkpoint)
    saved_names = [saved.id2label[i] for i in sorted(saved.id2label)]
    if saved_names != label_names:
        raise ConfigError(
            f"cannot resume from {checkpoint}: its label set {saved_names} differs from the data's {label_names}; "
            "resume with the same dataset settings, or start a new run without resume"
        )


def build_tokenizer_and_model(cfg: DictConfig, data: NerData, ctx: RunContext) -> tuple[Any, Any]:
    cache_dir = cfg.paths.cache_dir
    if ctx.resume_checkpoint:
        _check_resume_labels(ctx.resume_checkpoint, data.label_names)
    if cfg.model.source == "tiny":
        tok_dir = ctx.run_dir / "tiny_tokenizer"
        # WordPiece training breaks ties differently in each process: the main process takes the
        # tokenizer for these words from the cache (building it once), copies it into the run dir
        # (renamed into place when complete), and the other DDP ranks load that copy.
        from transformers import AutoTokenizer

        reuse = ctx.resume_checkpoint and (tok_dir / "tokenizer.json").is_file()
        if _is_main_process() and not reuse:
            words = [w for tokens in data.splits["train"]["tokens"] for w in tokens]
            tmp_dir = tok_dir.with_name(tok_dir.name + ".tmp")
            shutil.rmtree(tmp_dir, ignore_errors=True)
            tiny = cfg.model.tiny
            cached_tiny_tokenizer(words, tiny.vocab_size, tiny.lowercase, cfg.paths.cache_dir, tmp_dir)
            shutil.rmtree(tok_dir, ignore_errors=True)
            os.replace(tmp_dir, tok_dir)
        _wait_for(tok_dir / "tokenizer.json", timeout_s=600)
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))  # every rank uses the saved files
        model = build_tiny_model(cfg.model, tokenizer, data.label_names)
    else:
        tokenizer = load_tokenizer(cfg.model, cache_dir)
        model = load_model(cfg.model, data.label_names, cache_dir)
    return tokenizer, model


def _wait_for(path: Path, timeout_s: float) -> None:
    """Wait until another rank has written ``path`` (DDP ranks share the run dir)."""
    deadline = time.time() + timeout_s
    while not path.exists():
        if time.time() > deadline:
            raise RuntimeError(f"gave up waiting {timeout_s:.0f}s for rank 0 to write {path}")
        time.sleep(0.2)


def default_run_name(cfg: DictConfig) -> str:
    return (
        cfg.logger.run_name
        or f"{cfg.model.name}-{cfg.dataset.name}-lr{cfg.trainer.learning_rate:g}-ep{cfg.trainer.num_train_epochs:g}"
    )


def build_training_arguments(
    cfg: DictConfig, ctx: RunContext, report_to: list[str], run_name: str
) -> TrainingArguments:
    t = cfg.trainer
    precision = resolve_precision(t.precision, t.use_cpu)
    split, _, metric = cfg.objective.partition(".")
    best_metric = metric if split == "validation" else "overall_f1"
    return TrainingArguments(
        output_dir=str(ctx.run_dir / CHECKPOINTS_DIR),
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
        save_strategy=t.eval_strategy,
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
        save_only_model=False,
        ddp_backend="gloo" if _several_processes() and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=False,
        disable_tqdm=False,
    )


def sparse_embedding_optimizer(
    cfg: DictConfig, args: TrainingArguments, model: Any, precision: str
) -> tuple[type[torch.optim.Optimizer], dict[str, Any]] | None:
    """``trainer.sparse_embedding_updates``: the optimizer for row-sparse embedding gradients, when it applies.

    Switches the model's word embedding to sparse gradients and returns the optimizer class and arguments
    for the Trainer (AdamW's own, as ``trainer.optim`` gives them), or None (logging why) where it does not apply.
    """
    t = cfg.trainer
    if not t.sparse_embedding_updates:
        return None
    if runs_on_gpu(t.use_cpu):
        reason = "on a GPU AdamW is one fused launch and the embedding gradient is cheap"
    elif precision == "fp16":
        reason = "precision=fp16 scales gradients for the loss scaler"
    elif t.torch_compile:
        reason = "torch_compile=true"
    elif _several_processes():
        reason = "several processes average dense gradients"
    else:
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
        if optimizer_cls is not torch.optim.AdamW:
            reason = f"optim={t.optim} is not torch's AdamW (adamw_torch or adamw_torch_fused)"
        elif not use_sparse_embedding_gradient(model):
            reason = "the model's input embedding is not a plain nn.Embedding of its own"
        else:
            return RowSparseAdamW, kwargs
    log.info("trainer.sparse_embedding_updates: not used (%s)", reason)
    return None


def apply_fast_cpu_dropout(cfg: DictConfig, model: Any) -> bool:
    """``trainer.fast_cpu_dropout``: swap the model's dropout for :class:`CpuDropout` where it applies."""
    t = cfg.trainer
    if not t.fast_cpu_dropout:
        return False
    if runs_on_gpu(t.use_cpu):
        reason = "on a GPU torch's dropout is one fused kernel"
    elif t.torch_compile:
        reason = "torch_compile=true compiles torch's dropout"
    elif not use_cpu_dropout(model):
        reason = "the model has no nn.Dropout modules"
    else:
        return True
    log.info("trainer.fast_cpu_dropout: not used (%s)", reason)
    return False


def run_training(cfg: DictConfig, run_dir: Path | None = None) -> float:
    """Train and evaluate as configured; returns the objective (by default validation overall F1)."""
    ctx = prepare_run(cfg, run_dir)
    is_main = _is_main_process()
    started = time.time()
    set_seed(cfg.seed)
    speed_settings = configure_torch_for_speed(cfg.trainer.use_cpu)
    metrics_path = ctx.run_dir / METRICS_FILE
    if is_main and not ctx.resume_checkpoint:
        OmegaConf.save(cfg, ctx.run_dir / "config.yaml", resolve=True)

    data = load_ner_data(cfg.dataset, cfg.paths.cache_dir)
    log.info(
        "Data %s: %s sentences, labels %s",
        data.source,
        ", ".join(f"{k} {len(v)}" for k, v in data.splits.items()),
        data.label_names,
    )
    tokenizer, model = build_tokenizer_and_model(cfg, data, ctx)
    if is_main and ctx.resume_checkpoint:
        # Only now that data and labels match the run being resumed: a rejected resume keeps its config.yaml.
        OmegaConf.save(cfg, ctx.run_dir / "config.yaml", resolve=True)
    max_length = resolve_max_length(cfg.model, tokenizer, model.config)
    train_window = training_window(max_length, cfg.model.window_stride, cfg.trainer.train_window_length)
    features, feature_report = build_features_cached(
        data,
        tokenizer,
        max_length,
        cfg.model.window_stride,
        cfg.label_all_subwords,
        cfg.paths.cache_dir,
        train_window=train_window,
    )
    eval_sets = {
        split: EvalSet(features[split], read_columns(data.splits[split], ["tags"])["tags"])
        for split in ("validation", "test")
    }
    train_features = features["train"].select_columns(
        [c for c in TRAIN_COLUMNS if c in features["train"].column_names]
    )

    run_name = default_run_name(cfg)
    tracker = Tracker(cfg.logger, ctx.run_dir, run_name, to_plain_dict(cfg), is_main, list(cfg.tags))
    failed = True
    try:
        tracker.start()
        args = build_training_arguments(cfg, ctx, tracker.report_to, run_name)
        precision = resolve_precision(cfg.trainer.precision, cfg.trainer.use_cpu)
        autocast = torch.bfloat16 if precision == "bf16" else torch.float16 if precision == "fp16" else None
        callbacks = _sweep_callbacks(cfg)
        collator = CountingCollator(
            DataCollatorForTokenClassification(
                tokenizer,
                pad_to_multiple_of=effective_pad_to_multiple_of(
                    cfg.trainer.pad_to_multiple_of, cfg.trainer.use_cpu
                ),
            )
        )
        throughput = TrainThroughputCallback(collator)
        optimizer_cls_and_kwargs = sparse_embedding_optimizer(cfg, args, model, precision)
        speed_settings["sparse_embedding_updates"] = optimizer_cls_and_kwargs is not None
        speed_settings["fast_cpu_dropout"] = apply_fast_cpu_dropout(cfg, model)
        trainer = NerTrainer(
            model=model,
            args=args,
            train_dataset=train_features,
            eval_dataset=eval_sets["validation"].features,  # scored by NerTrainer.evaluate, at word level
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[*callbacks, throughput],
            eval_sets=eval_sets,
            label_names=data.label_names,
            strict_iob2=cfg.metrics.strict_iob2,
            autocast_dtype=autocast,
            train_sampling=cfg.trainer.train_sampling,
            sparse_gradients=optimizer_cls_and_kwargs is not None,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
        )
        train_output = trainer.train(resume_from_checkpoint=ctx.resume_checkpoint)
        use_sparse_embedding_gradient(model, False)
        use_cpu_dropout(model, False)
        _raise_if_pruned(callbacks)

        validation, validation_s = trainer.score_best_validation()
        results: dict[str, Any] = {"validation": validation}
        eval_seconds = {"validation": round(validation_s, 3)}
        if cfg.run_test:
            test_start = time.perf_counter()
            results["test"] = trainer.score("test")
            eval_seconds["test"] = round(time.perf_counter() - test_start, 3)
        value = objective_value(cfg.objective, results)
        results["objective"] = {"name": cfg.objective, "value": value}
        results["train"] = {
            "runtime_s": round(train_output.metrics.get("train_runtime", 0.0), 2),
            "samples_per_second": train_output.metrics.get("train_samples_per_second"),
            "global_step": trainer.state.global_step,
            "epochs": trainer.state.epoch,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "num_sentences": len(data.splits["train"]),
            "sentences_split": count_split_sentences(features["train"]),
        }
        results["speed"] = {
            "features": feature_report.as_dict(),
            "train": throughput.summary(),
            "eval_seconds": eval_seconds,
            "torch_settings": speed_settings,
        }
        results["run"] = {
            "run_dir": str(ctx.run_dir),
            "run_name": run_name,
            "model": cfg.model.name_or_path or cfg.model.name,
            "dataset": data.source,
            "language": data.language,
            "label_names": data.label_names,
            "max_length": max_length,
            "train_max_length": train_window[0],
            "hardware": describe_hardware(),
            "precision": precision,
            "seed": cfg.seed,
            "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(time.time() - started, 1),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "wandb_url": tracker.url,
            "random_init_model": cfg.model.source == "tiny",
        }
        tracker.summary(
            {
                f"{split}/{k}": results[split][k]
                for split in ("validation", "test")
                if split in results
                for k in OVERALL_KEYS
            }
        )
        if is_main:
            _save_outputs(trainer, tokenizer, ctx, cfg, results)
            print(
                format_metrics_table(
                    f"validation ({results['validation']['num_sentences']} sentences)", results["validation"]
                )
            )
            if "test" in results:
                print(
                    format_metrics_table(
                        f"test ({results['test']['num_sentences']} sentences)", results["test"]
                    )
                )
            print(f"objective {cfg.objective} = {value:.4f}\nrun dir: {ctx.run_dir}")
            if cfg.model.source == "tiny":
                print(
                    "note: model=tiny is a small randomly initialised BERT; these scores only show the pipeline works"
                )
            _write_card(cfg, ctx.run_dir, results)
            write_json_atomic(metrics_path, results)  # the run is complete from here on
            if cfg.hub.push:
                from ner_experiments.publishing.push import push_run

                push_run(ctx.run_dir, cfg.hub)
        failed = False
        return value
    finally:
        tracker.finish(failed=failed)


def _save_outputs(
    trainer: NerTrainer, tokenizer: Any, ctx: RunContext, cfg: DictConfig, results: dict[str, Any]
) -> None:
    """The best model (safetensors), its tokenizer and the training config, into ``model/``."""
    model_dir = ctx.run_dir / "model"
    tmp_dir = ctx.run_dir / "model.tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    trainer.save_model(str(tmp_dir))
    tokenizer.save_pretrained(str(tmp_dir))
    OmegaConf.save(cfg, tmp_dir / "training_config.yaml", resolve=True)
    # Trainer also pickles its arguments; the published model is safetensors and YAML only.
    (tmp_dir / "training_args.bin").unlink(missing_ok=True)
    shutil.rmtree(model_dir, ignore_errors=True)
    os.replace(tmp_dir, model_dir)


def _sweep_callbacks(cfg: DictConfig) -> list[Any]:
    if not cfg.optuna.storage:
        return []
    from ner_experiments.sweeping.trial_reporting import build_trial_callback

    callback = build_trial_callback(cfg)
    return [callback] if callback is not None else []


def _raise_if_pruned(callbacks: list[Any]) -> None:
    if callbacks:
        from ner_experiments.sweeping.trial_reporting import raise_if_pruned

        raise_if_pruned(callbacks)


def _write_card(cfg: DictConfig, run_dir: Path, results: dict[str, Any]) -> None:
    """The model card (README.md); a problem with it is logged and never loses the trained run."""
    from ner_experiments.publishing.card import write_model_card

    try:
        write_model_card(run_dir, cfg, results)
    except Exception:
        log.exception(
            "could not write the model card; the model and metrics are saved, run ner-publish to retry"
        )
