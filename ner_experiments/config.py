"""The structured config schema: every key a run accepts, with its type, default and meaning.

Hydra merges the YAML files of ``conf/`` onto :class:`TrainConfig`, so a misspelt key or a value of
the wrong type fails at start-up. Value checks that types cannot express (a positive learning rate, a
data directory that exists) live in :func:`validate_config`, which every entry point calls before any
work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from ner_experiments.errors import ConfigError

DATASET_SOURCES = ("hub", "files", "sample")
MODEL_SOURCES = ("hub", "local", "tiny")
LOGGER_BACKENDS = ("wandb", "tensorboard", "none")
WANDB_MODES = ("auto", "online", "offline", "disabled")
EVAL_STRATEGIES = ("epoch", "steps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SAMPLING_STRATEGIES = ("random", "group_by_length", "length_buckets")
PROGRESS_BARS = ("auto", "on", "off")
# The scores every evaluation produces that ``objective`` may name (metrics.json has them per split).
OBJECTIVE_METRICS = ("overall_f1", "overall_precision", "overall_recall", "overall_accuracy")


@dataclass
class DatasetConfig:
    """Where the sentences and their tags come from.

    Every source is read into one contract: splits of ``tokens`` (list of words) and integer ``tags``
    plus the list of label names (from a ClassLabel feature, or ``label_names`` when declared).
    """

    name: str = MISSING  # a short name for run names and the model card, e.g. "wikiann_bn"
    source: str = "hub"  # hub | files | sample
    # Hub data set id, or a local folder laid out like that Hub repo (parquet files + README configs).
    path: str | None = None
    config_name: str | None = None  # Hub config (WikiANN: the language code)
    language: str | None = None  # ISO code for the model card and widgets, e.g. "bn"
    revision: str | None = None
    data_dir: str | None = None  # source=files: folder holding the split files
    file_format: str = "auto"  # source=files: conll | jsonl | auto (by extension)
    train_file: str = "train"  # source=files: file name or stem (extension found automatically)
    validation_file: str = "validation"
    test_file: str = "test"
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    tokens_column: str = "tokens"
    tags_column: str = "ner_tags"
    label_names: list[str] | None = None  # declared label list, when the data has no ClassLabel feature
    max_train_samples: int | None = None  # take the first N sentences (quick runs, benchmarks)
    max_eval_samples: int | None = None  # same for validation and test
    license: str | None = None  # for the model card
    hub_dataset_id: str | None = None  # the Hub id the card's `datasets:` field names
    # The data set's name as people know it, for the card's model-index (e.g. "WikiANN"); null: the Hub
    # id, else the data folder's name, else `name`.
    pretty_name: str | None = None


@dataclass
class TinyModelConfig:
    """Shape of the randomly initialised BERT used by ``model=tiny`` (quickstart and tests only); its
    tokenizer is the one shipped with the sample data (``ner_experiments/sample_data/tiny_tokenizer``)."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 512


@dataclass
class ModelConfig:
    """The encoder to fine-tune and its tokenizer."""

    name: str = MISSING  # short name for run names, e.g. "mbert_cased"
    source: str = "hub"  # hub | local | tiny
    name_or_path: str | None = None  # Hub id (source=hub) or folder (source=local)
    revision: str = "main"
    # The Hub id a local model (source=local) was fine-tuned from, e.g. bert-base-cased: the model card's
    # base_model. Hub models (source=hub) are their own base; null for a local model leaves it out.
    base_model: str | None = None
    # Longest input in sub-word pieces, special tokens included; longer sentences are split into
    # overlapping windows. null = the tokenizer's model_max_length, capped at 512.
    max_length: int | None = None
    window_stride: int = 128  # pieces of left context a window repeats from the one before it
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class TrainerConfig:
    """Optimisation and evaluation schedule. ``default`` is the tutorial's recipe."""

    name: str = "default"
    learning_rate: float = 2e-5
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 16
    num_train_epochs: float = 7.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    lr_scheduler_type: str = "linear"
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    eval_strategy: str = "epoch"  # epoch | steps
    eval_steps: int | None = None  # with eval_strategy=steps
    # With eval_strategy=epoch: evaluate at k/evals_per_epoch of each epoch (k = 1..evals_per_epoch), so a
    # sweep can prune within an epoch. Above 1 (and in every sweep trial) a checkpoint is written only at an
    # evaluation that is a new best (save_strategy=best): the best model is loaded at the end as before, and
    # a resumed run continues from the best checkpoint so far.
    evals_per_epoch: int = 1
    logging_steps: int = 50
    save_total_limit: int = 2  # checkpoints kept for resuming (the best one is always kept)
    # auto | fp32 | bf16 | fp16 ; auto = bf16 autocast on CPUs with AVX512-BF16/AMX, fp32 + TF32 on GPUs
    # (see hardware.resolve_precision), else fp32. Evaluation is always in fp32, as the model is saved.
    precision: str = "fp32"
    # random | group_by_length (transformers' mega-batches of <= 50 batches) | length_buckets (batches cut
    # from length-sorted buckets of 100 batches, served in random order: the least padding; sampling.py)
    train_sampling: str = "random"
    # Training sentences longer than this many pieces are split into overlapping windows (stride
    # min(model.window_stride, length / 4)); null = model.max_length. Evaluation always uses model.max_length.
    # Shorter windows cut attention cost and padding of the rare very long sentence (NER context is local).
    train_window_length: int | None = None
    pad_to_multiple_of: int | None = None  # 8 pays on GPU tensor cores; costs time on CPU
    # transformers' own default today: one fused kernel for the AdamW update (same algorithm as adamw_torch)
    optim: str = "adamw_torch_fused"
    torch_compile: bool = False
    dataloader_num_workers: int = 0
    use_cpu: bool = False  # force CPU even when a GPU is present
    # auto | on | off ; auto = progress bars when the output is a terminal, none in a SLURM/nohup log
    progress_bars: str = "auto"


@dataclass
class LoggerConfig:
    """Experiment tracking. ``wandb`` goes offline by itself when no credentials are found."""

    backend: str = "none"  # wandb | tensorboard | none
    project: str = "ner-experiments"
    entity: str | None = None
    run_name: str | None = None  # default: <model>-<dataset>-lr<lr>-ep<epochs>
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    mode: str = "auto"  # auto | online | offline | disabled
    job_type: str | None = None  # W&B job type; a sweep sets trial or confirm


@dataclass
class MetricsConfig:
    """How predictions are scored (seqeval, entity level, at word level)."""

    strict_iob2: bool = False  # seqeval mode="strict", scheme=IOB2


@dataclass
class HubConfig:
    """Publishing the trained model to the Hugging Face Hub at the end of a run."""

    push: bool = False
    repo_id: str | None = None
    private: bool = False
    dry_run: bool = False  # write the folder that would be uploaded, upload nothing
    license: str = "apache-2.0"
    max_retries: int = 3


@dataclass
class OptunaTrialConfig:
    """Filled in by the Optuna sweeper for each trial, so training can report to the study.

    Training reports the objective at every evaluation to ``trial_number`` of ``study_name`` in
    ``storage`` and stops when the study's pruner says so.
    """

    storage: str | None = None
    study_name: str | None = None
    trial_number: int | None = None
    # Where the trial process writes its heartbeat, so a dead trial can be detected and retried.
    heartbeat_interval: int | None = None


@dataclass
class PathsConfig:
    """Every directory a run touches."""

    output_dir: str = "outputs"
    cache_dir: str | None = None  # Hugging Face datasets/model cache; null = the library default


@dataclass
class TrainConfig:
    """A complete training run: what ``python train.py ...`` composes."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    # The sweeper's per-trial bookkeeping (docs/sweeps.md): null in a single run, never set by hand.
    optuna: OptunaTrialConfig = field(default_factory=OptunaTrialConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 42
    # First sub-word of a word carries its label (others ignored) unless true: then continuation
    # pieces get the I- form of the word's tag. Evaluation is at word level either way.
    label_all_subwords: bool = False
    # What train.py returns to a sweeper: "<split>.<metric>", e.g. validation.overall_f1; the metric is
    # one of OBJECTIVE_METRICS, and a test.* objective needs run_test=true (checked at start-up).
    objective: str = "validation.overall_f1"
    # Continue a crashed or killed run: "true"/"latest" finds the newest unfinished run with the same
    # overrides under paths.output_dir; or give the run directory itself.
    resume: str | None = None
    run_test: bool = True  # evaluate the best model on the test split at the end
    tags: list[str] = field(default_factory=list)
    # The experiment file this run came from (experiment files set it); tags go to W&B with logger.tags.
    experiment: str | None = None


def register_configs() -> None:
    """Register the schema so ``conf/train.yaml`` can extend it (defaults entry ``train_schema``)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not valid: use one of {', '.join(allowed)}")


def _positive(key: str, value: float, example: str) -> None:
    if value is None or not 0 < value < float("inf"):  # also rejects nan, which compares false with anything
        raise ConfigError(f"{key}={value} must be greater than 0, e.g. {key}={example}")


def validate_config(cfg: DictConfig | TrainConfig) -> None:
    """Check the values a type cannot check. Raises :class:`ConfigError` naming the key and the fix."""
    c: Any = cfg
    _choice("dataset.source", c.dataset.source, DATASET_SOURCES)
    _choice("model.source", c.model.source, MODEL_SOURCES)
    _choice("logger.backend", c.logger.backend, LOGGER_BACKENDS)
    _choice("logger.mode", c.logger.mode, WANDB_MODES)
    _choice("trainer.eval_strategy", c.trainer.eval_strategy, EVAL_STRATEGIES)
    _choice("trainer.precision", c.trainer.precision, PRECISIONS)
    _choice("trainer.train_sampling", c.trainer.train_sampling, SAMPLING_STRATEGIES)
    _choice("trainer.progress_bars", c.trainer.progress_bars, PROGRESS_BARS)
    _check_trainer(c.trainer)
    _check_data_and_model(c.dataset, c.model)
    _check_objective(str(c.objective), bool(c.run_test))
    if c.paths.output_dir is None or not str(c.paths.output_dir).strip():
        raise ConfigError(
            "paths.output_dir is empty: give the folder runs are written under, e.g. paths.output_dir=outputs"
        )
    if c.hub.push and not c.hub.repo_id:
        raise ConfigError("hub.push=true needs hub.repo_id, e.g. hub.repo_id=your-name/bengali-ner")


def _check_objective(objective: str, run_test: bool) -> None:
    """The objective must name a score the run will produce: a split it evaluates and an overall metric."""
    split, _, metric = objective.partition(".")
    if split not in ("validation", "test") or metric not in OBJECTIVE_METRICS:
        raise ConfigError(
            f"objective={objective} is not a metric a run produces: use <validation|test>.<metric> with "
            f"<metric> one of {', '.join(OBJECTIVE_METRICS)}, e.g. objective=validation.overall_f1"
        )
    if split == "test" and not run_test:
        raise ConfigError(
            f"objective={objective} needs the test scores but run_test=false skips the test split: "
            f"set run_test=true, or use objective=validation.{metric}"
        )


def _check_trainer(t: Any) -> None:
    _positive("trainer.learning_rate", t.learning_rate, "2e-5")
    if t.max_steps is None or t.max_steps <= 0:
        _positive("trainer.num_train_epochs", t.num_train_epochs, "3")
    _positive("trainer.per_device_train_batch_size", t.per_device_train_batch_size, "16")
    _positive("trainer.per_device_eval_batch_size", t.per_device_eval_batch_size, "32")
    _positive("trainer.gradient_accumulation_steps", t.gradient_accumulation_steps, "1")
    _positive("trainer.logging_steps", t.logging_steps, "50")
    if not 0 <= t.weight_decay < float("inf"):
        raise ConfigError(f"trainer.weight_decay={t.weight_decay} must be >= 0, e.g. 0.01")
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"trainer.warmup_ratio={t.warmup_ratio} must be in [0, 1), e.g. 0.1")
    if t.eval_strategy == "steps":
        _positive("trainer.eval_steps", t.eval_steps, "500")
    if t.evals_per_epoch is None or t.evals_per_epoch < 1:
        raise ConfigError(
            f"trainer.evals_per_epoch={t.evals_per_epoch} must be >= 1 (evaluations per epoch), e.g. 2"
        )
    if t.evals_per_epoch > 1 and t.eval_strategy != "epoch":
        raise ConfigError(
            f"trainer.evals_per_epoch={t.evals_per_epoch} works with trainer.eval_strategy=epoch only: "
            "use that, or trainer.eval_steps to set how often eval_strategy=steps evaluates"
        )
    if t.pad_to_multiple_of is not None:
        _positive("trainer.pad_to_multiple_of", t.pad_to_multiple_of, "8")
    if t.train_window_length is not None and t.train_window_length < 16:
        raise ConfigError(
            f"trainer.train_window_length={t.train_window_length} is too small: use at least 16, "
            "e.g. 128 (or null for model.max_length)"
        )


def _check_data_and_model(d: Any, m: Any) -> None:
    if m.max_length is not None and m.max_length < 8:
        raise ConfigError(f"model.max_length={m.max_length} is too small: use at least 8, e.g. 512")
    if m.window_stride < 0:
        raise ConfigError(f"model.window_stride={m.window_stride} must be >= 0, e.g. 128")
    for key in ("max_train_samples", "max_eval_samples"):
        value = d[key] if isinstance(d, DictConfig) else getattr(d, key)
        if value is not None and value <= 0:
            raise ConfigError(f"dataset.{key}={value} must be > 0 (or null for all sentences)")
    if d.source == "hub" and not d.path:
        raise ConfigError(
            "dataset.path is not set: give a Hub data set id or a local folder, e.g. dataset=wikiann_bn"
        )
    if d.source == "files":
        if not d.data_dir:
            raise ConfigError(
                "dataset.data_dir is not set: dataset=conll_files needs dataset.data_dir=path/to/dir"
            )
        if not Path(d.data_dir).is_dir():
            raise ConfigError(
                f"dataset.data_dir={d.data_dir} does not exist: give a folder with train/validation/test files"
            )
        _choice("dataset.file_format", d.file_format, ("auto", "conll", "jsonl"))
    if m.source in ("hub", "local") and not m.name_or_path:
        raise ConfigError(
            f"model.name_or_path is not set: model.source={m.source} needs a Hub id or a folder"
        )
    if m.base_model and (m.base_model.startswith(("/", "~", ".")) or m.base_model.count("/") > 1):
        raise ConfigError(
            f"model.base_model={m.base_model} is not a Hub id: give the id the local model was fine-tuned "
            "from, e.g. model.base_model=bert-base-multilingual-cased"
        )
    if m.source == "local" and not Path(m.name_or_path).is_dir():
        raise ConfigError(
            f"model.name_or_path={m.name_or_path} is not a folder: give a saved model directory"
        )


def to_plain_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python data (for W&B, the model card and saved files)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]
