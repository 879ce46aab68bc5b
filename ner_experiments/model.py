"""The model: an encoder with a token-classification head, loaded for training or as a saved NER model.

One loader serves training (``load_for_training``: a Hub model, a local folder or the tiny random BERT,
with the data's label names), and ``ner-evaluate`` / ``ner-predict`` (:meth:`NerModel.load`: a run
directory, a model folder or a Hub id). Weights are loaded as safetensors only and
``trust_remote_code`` stays off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ner_experiments.errors import ModelLoadError
from ner_experiments.features.builder import resolve_max_length
from ner_experiments.labels import b_to_i_label_ids, is_valid_tag_name
from ner_experiments.offline import is_network_error, offline_advice

if TYPE_CHECKING:
    from ner_experiments.config import ModelConfig

DEFAULT_WINDOW_STRIDE = 128
TRAINING_CONFIG_FILE = "training_config.yaml"
# The tiny model's WordPiece tokenizer, trained once on the sample data (scripts/make_sample_data.py).
TINY_TOKENIZER_DIR = Path(__file__).resolve().parent / "sample_data" / "tiny_tokenizer"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model")


def from_pretrained(cls: Any, source: str, what: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(source)`` with every failure turned into one :class:`ModelLoadError` line."""
    is_folder = Path(source).is_dir()
    if is_folder:
        kwargs.pop("revision", None)
        kwargs.pop("cache_dir", None)
    try:
        return cls.from_pretrained(source, trust_remote_code=False, **kwargs)
    except ModelLoadError:
        raise
    except Exception as err:
        if not is_folder and is_network_error(err):
            raise ModelLoadError(
                f"cannot load {what} of model {source}: the Hub cannot be reached and it is not in the "
                f"local cache. {offline_advice('model')}"
            ) from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not is_folder and any(
            hint in first.lower() for hint in ("not a valid model identifier", "repository not found")
        ):
            raise ModelLoadError(
                f"no model {source} on the Hub or in the cache, and no such local folder"
            ) from None
        raise ModelLoadError(f"cannot load {what} of model {source}: {first}") from None


# Keys transformers saves into tokenizer_config.json that say how THIS machine loaded the tokenizer.
LOADING_FLAGS = ("is_local", "local_files_only", "cache_dir", "token", "use_auth_token", "_commit_hash")


def remove_loading_flags(folder: Path) -> None:
    """Drop :data:`LOADING_FLAGS` from a saved ``tokenizer_config.json`` (they would follow the model)."""
    import json

    path = Path(folder) / "tokenizer_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    kept = {k: v for k, v in config.items() if k not in LOADING_FLAGS}
    if kept != config:
        path.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_tokenizer(source: str, revision: str | None = None, cache_dir: str | None = None) -> Any:
    """The fast tokenizer of a Hub model or local folder (a slow-only tokenizer cannot map words)."""
    from transformers import AutoTokenizer

    folder = Path(source)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(
            f"model folder {folder} has no tokenizer (no tokenizer.json or vocab file): "
            "save one there with tokenizer.save_pretrained(folder)"
        )
    tokenizer = from_pretrained(
        AutoTokenizer, source, "tokenizer", revision=revision, cache_dir=cache_dir, use_fast=True
    )
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{source}: only a slow tokenizer is available; a fast (Rust) tokenizer is needed to map words"
        )
    return tokenizer


def configured_tokenizer(cfg: ModelConfig, cache_dir: str | None = None) -> Any:
    """The tokenizer of the configured model (``model=tiny``: the one shipped with the sample data)."""
    if cfg.source == "tiny":
        return load_tokenizer(str(TINY_TOKENIZER_DIR))
    return load_tokenizer(str(cfg.name_or_path), cfg.revision, cache_dir)


def load_for_training(
    cfg: ModelConfig, label_names: list[str], cache_dir: str | None = None
) -> tuple[Any, Any]:
    """Tokenizer and model to fine-tune: a new head with the data's labels on the configured encoder."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    labels = {"id2label": dict(enumerate(label_names)), "label2id": {n: i for i, n in enumerate(label_names)}}
    tokenizer = configured_tokenizer(cfg, cache_dir)
    if cfg.source == "tiny":
        return tokenizer, _tiny_model(cfg, len(tokenizer), labels)
    source = str(cfg.name_or_path)
    config = from_pretrained(
        AutoConfig,
        source,
        "config",
        revision=cfg.revision,
        cache_dir=cache_dir,
        num_labels=len(label_names),
        **labels,
    )
    model = from_pretrained(
        AutoModelForTokenClassification,
        source,
        "model",
        revision=cfg.revision,
        cache_dir=cache_dir,
        config=config,
        ignore_mismatched_sizes=True,  # the head is new: its size follows the data's labels
        use_safetensors=True,  # never unpickle weights from a download
    )
    return tokenizer, model


def _tiny_model(cfg: ModelConfig, vocab_size: int, labels: dict[str, Any]) -> Any:
    """A small randomly initialised BERT (quickstart and tests only: not a pretrained model)."""
    import logging

    from transformers import AutoModelForTokenClassification, BertConfig

    t = cfg.tiny
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        intermediate_size=t.intermediate_size,
        max_position_embeddings=t.max_position_embeddings,
        num_labels=len(labels["id2label"]),
        **labels,
    )
    logging.getLogger(__name__).warning(
        "model=tiny: a small RANDOMLY INITIALISED BERT (for the quickstart and tests; its scores mean little)"
    )
    return AutoModelForTokenClassification.from_config(config)


# --- A saved model ----------------------------------------------------------------------------------


def resolve_model_dir(ref: str) -> Path | None:
    """The model folder of a run dir or a model folder; None for something that names a Hub id.

    Raises :class:`ModelLoadError` for a local path that does not hold a model.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        for folder in (path / "model", path):
            if (folder / "config.json").is_file():
                return folder
        raise ModelLoadError(
            f"{ref} holds no saved model: give a run directory (with model/) or a model folder with config.json"
        )
    looks_like_path = (
        ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref or ref.endswith("/")
    )
    if path.exists() or looks_like_path:
        raise ModelLoadError(
            f"no model at {ref}: the folder does not exist (give a run directory, a model folder or a Hub id)"
        )
    return None


def label_names_of(config: Any, source: str) -> list[str]:
    """The model's IOB2 label names, in id order; :class:`ModelLoadError` when it has none."""
    id2label = getattr(config, "id2label", None) or {}
    names = [str(id2label[i]) for i in sorted(id2label)]
    if not names or not all(is_valid_tag_name(n) for n in names):
        shown = ", ".join(names[:4]) or "none"
        raise ModelLoadError(
            f"model {source} has no NER label names in its config (id2label: {shown}): "
            "use a model saved by a training run, whose config.json maps ids to O / B-TYPE / I-TYPE"
        )
    return names


def _training_config(folder: Path | None, ref: str, revision: str | None, cache_dir: str | None) -> Any:
    """The run's resolved config saved beside the model (window settings), or None."""
    from omegaconf import OmegaConf

    path: Path | None = folder / TRAINING_CONFIG_FILE if folder is not None else None
    if folder is None:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(ref, TRAINING_CONFIG_FILE, revision=revision, cache_dir=cache_dir))
        except Exception:  # older uploads have none; the defaults then apply
            return None
    return OmegaConf.load(path) if path is not None and path.is_file() else None


@dataclass
class NerModel:
    """A saved NER model ready to tag words: model, tokenizer, label names and window settings."""

    model: Any
    tokenizer: Any
    label_names: list[str]
    max_length: int
    window_stride: int
    source: str
    training_config: Any = None  # the run's resolved config when the model folder has one

    @classmethod
    def load(
        cls, ref: str, cache_dir: str | None = None, device: str | None = None, revision: str | None = None
    ) -> NerModel:
        """Load from a run dir, a model folder or a Hub id (offline: from the local cache only)."""
        import torch
        from transformers import AutoConfig, AutoModelForTokenClassification

        if not ref or not str(ref).strip():
            raise ModelLoadError(
                "no model given: use --model RUN_DIR, a model folder or a Hub id like me/bengali-ner"
            )
        folder = resolve_model_dir(ref)
        source = str(folder) if folder else ref
        hub = {"revision": revision, "cache_dir": cache_dir}
        config = from_pretrained(AutoConfig, source, "config", **hub)
        label_names = label_names_of(config, ref)
        tokenizer = load_tokenizer(source, revision, cache_dir)
        model = from_pretrained(
            AutoModelForTokenClassification, source, "model", config=config, use_safetensors=True, **hub
        )
        target = (
            torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        )
        model.to(target).eval()
        training = _training_config(folder, ref, revision, cache_dir)
        window = training.model if training is not None and "model" in training else {}
        max_length = resolve_max_length(window.get("max_length"), tokenizer, config)
        stride = int(window.get("window_stride") or DEFAULT_WINDOW_STRIDE)
        return cls(model, tokenizer, label_names, max_length, stride, source, training)

    def predict_words(
        self, sentences: Sequence[Sequence[str]], batch_size: int = 32
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Label names and probabilities per word, for sentences given as word lists (empty ones allowed),
        built and read exactly as evaluation does."""
        from ner_experiments.evaluation import predict_word_labels
        from ner_experiments.features import FeatureBuilder, FeatureSettings

        keep = [i for i, words in enumerate(sentences) if len(words) > 0]
        labels: list[list[str]] = [[] for _ in sentences]
        scores: list[list[float]] = [[] for _ in sentences]
        if not keep:
            return labels, scores
        settings = FeatureSettings(self.max_length, self.window_stride)
        builder = FeatureBuilder(self.tokenizer, settings, b_to_i_label_ids(self.label_names))
        words = [list(sentences[i]) for i in keep]
        features = builder({"tokens": words, "tags": [[0] * len(w) for w in words]}, range(len(words)))
        pad_id = getattr(self.tokenizer, "pad_token_id", 0) or 0
        ids, probs = predict_word_labels(self.model, features, [len(w) for w in words], batch_size, pad_id)
        for k, i in enumerate(keep):
            labels[i] = [self.label_names[t] for t in ids[k]]
            scores[i] = probs[k]
        return labels, scores
