"""Tagging text with a saved model: word-level entities with their character offsets.

Raw text is split into words (a simple Unicode-aware tokenizer that keeps Bengali vowel signs and
other combining marks inside words, or plain whitespace), then features are built with the same
:class:`~ner_experiments.alignment.FeatureBuilder` as training (long inputs in overlapping windows)
and read word by word with :func:`~ner_experiments.evaluation.predict_word_labels`, so a sentence is
tagged exactly as evaluation tags it. Entities are IOB2 spans of words, mapped back to the input text.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ner_experiments.errors import DataError, ModelLoadError
from ner_experiments.labels import b_to_i_label_ids, is_valid_tag_name
from ner_experiments.offline import is_network_error

log = logging.getLogger(__name__)

WORD_SPLITS = ("simple", "whitespace")
JOINERS = {"\u200c", "\u200d", "_"}  # zero-width (non-)joiners are part of Bengali/Indic words


@dataclass
class Entity:
    """One predicted entity: its text, type, mean word probability, character span and word span."""

    text: str
    type: str
    score: float
    start: int  # character offsets into the input text, end exclusive
    end: int
    word_start: int  # word indices, end exclusive
    word_end: int


@dataclass
class LoadedModel:
    """A saved NER model ready to predict: model, tokenizer, label names and input length."""

    model: Any
    tokenizer: Any
    label_names: list[str]
    max_length: int
    window_stride: int
    source: str
    training_config: Any = None  # the run's resolved config when the model folder has one


# --- Words and offsets ------------------------------------------------------------------------------


def _is_word_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "LNM" or ch in JOINERS


def split_words(text: str, mode: str = "simple") -> list[tuple[str, int, int]]:
    """Words of ``text`` with their ``(start, end)`` character offsets.

    ``simple``: runs of letters, digits and combining marks are words (so Bengali ``বিষয়ে`` stays one
    word) and every other visible character (punctuation such as ``,`` or the danda ``।``) is a word
    of its own, as in WikiANN and CoNLL. ``whitespace``: split at whitespace only (pre-tokenized text).
    """
    if mode not in WORD_SPLITS:
        raise DataError(f"word split {mode!r} is not valid: use one of {', '.join(WORD_SPLITS)}")
    words: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        j = i + 1
        if mode == "whitespace":
            while j < n and not text[j].isspace():
                j += 1
        elif _is_word_char(ch):
            while j < n and _is_word_char(text[j]):
                j += 1
        else:  # one punctuation mark or symbol; keep following combining marks with it
            while j < n and unicodedata.category(text[j])[0] == "M":
                j += 1
        words.append((text[i:j], i, j))
        i = j
    return words


def offsets_for_tokens(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Pre-tokenized input: the text they form joined by single spaces, and each token's offsets in it."""
    spans, pos = [], 0
    for tok in tokens:
        spans.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return " ".join(tokens), spans


def decode_entities(
    labels: Sequence[str], scores: Sequence[float], text: str, spans: Sequence[tuple[int, int]]
) -> list[Entity]:
    """IOB2 word labels → entities (lenient, like seqeval's default: an I- after O or another type starts one)."""
    entities: list[Entity] = []
    current: tuple[str, int] | None = None

    def close(end_word: int) -> None:
        if current is None:
            return
        kind, first = current
        start, end = spans[first][0], spans[end_word - 1][1]
        mean = sum(scores[first:end_word]) / (end_word - first)
        entities.append(Entity(text[start:end], kind, round(float(mean), 4), start, end, first, end_word))

    for i, label in enumerate(labels):
        prefix, kind = (label[:2], label[2:]) if label != "O" else ("O", "")
        if prefix == "B-" or (prefix == "I-" and (current is None or current[0] != kind)):
            close(i)
            current = (kind, i)
        elif prefix == "O":
            close(i)
            current = None
    close(len(labels))
    return entities


# --- Loading -----------------------------------------------------------------------------------------


def _looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref or ref.endswith("/")


def resolve_model_dir(ref: str) -> Path | None:
    """The model folder of a run dir or a model folder; None for something that names a Hub id.

    Raises :class:`ModelLoadError` for a local path that does not hold a model.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        if (path / "model" / "config.json").is_file():
            return path / "model"
        if (path / "config.json").is_file():
            return path
        raise ModelLoadError(
            f"{ref} holds no saved model: give a run directory (with model/) or a model folder with config.json"
        )
    if path.exists() or _looks_like_path(ref):
        raise ModelLoadError(
            f"no model at {ref}: the folder does not exist (give a run directory, a model folder or a Hub id)"
        )
    return None


def label_names_of(config: Any, source: str) -> list[str]:
    """The model's IOB2 label names, in id order; :class:`ModelLoadError` when it has none."""
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label)]
    if not names or not all(is_valid_tag_name(str(n)) for n in names):
        shown = ", ".join(map(str, names[:4])) or "none"
        raise ModelLoadError(
            f"model {source} has no NER label names in its config (id2label: {shown}): "
            "use a model saved by a training run, whose config.json maps ids to O / B-TYPE / I-TYPE"
        )
    return [str(n) for n in names]


def _hub_training_config(repo_id: str, cache_dir: str | None, revision: str | None) -> Path | None:
    """The run's ``training_config.yaml`` of a published model (window settings); None when unavailable."""
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, "training_config.yaml", revision=revision, cache_dir=cache_dir))
    except Exception:  # older uploads have none; the defaults below then apply
        return None


def load_for_prediction(
    ref: str, cache_dir: str | None = None, device: str | None = None, revision: str | None = None
) -> LoadedModel:
    """Load a model from a run dir, a model folder or a Hub id (offline: from the local cache only)."""
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    from ner_experiments.modeling import resolve_max_length

    if not ref or not str(ref).strip():
        raise ModelLoadError(
            "no model given: use --model RUN_DIR, a model folder or a Hub id like me/bengali-ner"
        )
    folder = resolve_model_dir(ref)
    source = str(folder) if folder else ref
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    if folder is None:
        kwargs.update(cache_dir=cache_dir, revision=revision)
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        label_names = label_names_of(config, ref)
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)
        model = AutoModelForTokenClassification.from_pretrained(
            source, config=config, use_safetensors=True, **kwargs
        )
    except ModelLoadError:
        raise
    except Exception as err:
        if folder is None and is_network_error(err):
            raise ModelLoadError(
                f"cannot load model {ref} from the Hub: it cannot be reached and the model is not in the local cache; "
                "use a local path (a run directory or model folder), or HF_HUB_OFFLINE=1 with a populated cache"
            ) from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if folder is None and (
            "not a valid model identifier" in first
            or "does not exist" in first.lower()
            or "repository not found" in first.lower()
        ):
            raise ModelLoadError(
                f"no model {ref} on the Hub or in the cache, and no such local folder"
            ) from None
        raise ModelLoadError(f"cannot load model {source}: {first}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{source}: only a slow tokenizer is available; a fast tokenizer is needed to map words"
        )
    training_config = None
    stride = 128
    max_len_cfg = None
    config_file = (
        folder / "training_config.yaml"
        if folder is not None
        else _hub_training_config(ref, cache_dir, revision)
    )
    if config_file is not None and config_file.is_file():
        training_config = OmegaConf.load(config_file)
        stride = int(OmegaConf.select(training_config, "model.window_stride", default=128) or 128)
        max_len_cfg = OmegaConf.select(training_config, "model.max_length", default=None)
    max_length = resolve_max_length(SimpleNamespace(max_length=max_len_cfg), tokenizer, config)  # type: ignore[arg-type]
    target = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(target).eval()
    return LoadedModel(model, tokenizer, label_names, max_length, stride, source, training_config)


# --- Predicting --------------------------------------------------------------------------------------


def predict_word_tags(
    loaded: LoadedModel, sentences: Sequence[Sequence[str]], batch_size: int = 32
) -> tuple[list[list[str]], list[list[float]]]:
    """Label names and probabilities per word, for sentences given as word lists (empty ones allowed)."""
    from datasets import Dataset

    from ner_experiments.alignment import FeatureBuilder
    from ner_experiments.evaluation import predict_word_labels

    keep = [i for i, words in enumerate(sentences) if len(words) > 0]
    labels: list[list[str]] = [[] for _ in sentences]
    scores: list[list[float]] = [[] for _ in sentences]
    if not keep:
        return labels, scores
    builder = FeatureBuilder(
        loaded.tokenizer, loaded.max_length, loaded.window_stride, False, b_to_i_label_ids(loaded.label_names)
    )
    words = [list(sentences[i]) for i in keep]
    batch: dict[str, list[Any]] = {"tokens": words, "tags": [[0] * len(w) for w in words]}
    features = Dataset.from_dict(builder(batch, list(range(len(words)))))
    pad_id = getattr(loaded.tokenizer, "pad_token_id", 0) or 0
    ids, probs = predict_word_labels(loaded.model, features, [len(w) for w in words], batch_size, pad_id)
    for k, i in enumerate(keep):
        labels[i] = [loaded.label_names[t] for t in ids[k]]
        scores[i] = probs[k]
    return labels, scores


def predict_texts(
    loaded: LoadedModel, texts: Sequence[str], word_split: str = "simple", batch_size: int = 32
) -> list[dict[str, Any]]:
    """Raw texts → one record each: ``{"text", "entities": [{text, type, score, start, end, ...}]}``."""
    split = [split_words(text, word_split) for text in texts]
    labels, scores = predict_word_tags(loaded, [[w for w, _, _ in words] for words in split], batch_size)
    out = []
    for text, words, labs, scs in zip(texts, split, labels, scores, strict=True):
        spans = [(s, e) for _, s, e in words]
        out.append({"text": text, "entities": [asdict(e) for e in decode_entities(labs, scs, text, spans)]})
    return out


def predict_tokens(
    loaded: LoadedModel, sentences: Sequence[Sequence[str]], batch_size: int = 32
) -> list[dict[str, Any]]:
    """Pre-tokenized sentences → records with ``tokens``, the space-joined ``text`` and entities in it."""
    labels, scores = predict_word_tags(loaded, sentences, batch_size)
    out = []
    for tokens, labs, scs in zip(sentences, labels, scores, strict=True):
        text, spans = offsets_for_tokens(tokens)
        entities = [asdict(e) for e in decode_entities(labs, scs, text, spans)]
        out.append({"tokens": list(tokens), "text": text, "entities": entities})
    return out


def parse_pretokenized_line(line: str, lineno: int, source: str) -> list[str]:
    """A JSON list of tokens, a JSON object with ``tokens``, or whitespace-separated tokens."""
    stripped = line.strip()
    if stripped.startswith(("[", "{")):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{source}:{lineno}: not valid JSON ({err.msg}): give a list of tokens per line"
            ) from None
        tokens = value.get("tokens") if isinstance(value, dict) else value
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f'{source}:{lineno}: expected a JSON list of strings or an object with "tokens"')
        return [t for t in tokens]
    return stripped.split()
