"""Building the tokenizer and the token-classification model for a run.

Weights are loaded and saved as safetensors only and ``trust_remote_code`` stays off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertTokenizerFast,
)

from ner_experiments.config import ModelConfig
from ner_experiments.errors import ModelLoadError
from ner_experiments.feature_cache import cache_subdir
from ner_experiments.offline import is_network_error, offline_advice

log = logging.getLogger(__name__)

MAX_LENGTH_CAP = 512
TINY_TOKENIZER_SUBDIR = "ner_tiny_tokenizers"
TINY_TOKENIZER_FORMAT = 1  # bump when build_tiny_tokenizer changes what it builds
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "tokenizer_config.json",
    "spiece.model",
)


def load_tokenizer(cfg: ModelConfig, cache_dir: str | None = None) -> Any:
    """The fast tokenizer of a Hub model or local folder (a slow-only tokenizer cannot map words)."""
    source = str(cfg.name_or_path)
    if cfg.source == "local":
        folder = Path(source)
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            raise ModelLoadError(
                f"model folder {folder} has no tokenizer (no tokenizer.json or vocab file): "
                "save one there with tokenizer.save_pretrained(folder)"
            )
    tokenizer = _from_pretrained(AutoTokenizer, source, cfg, cache_dir, "tokenizer", use_fast=True)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{source}: only a slow tokenizer is available; a fast (Rust) tokenizer is needed to map words"
        )
    return tokenizer


def load_model(
    cfg: ModelConfig, label_names: list[str], cache_dir: str | None = None, checkpoint: str | None = None
) -> Any:
    """A token-classification head on the configured encoder, with the data's label names in its config."""
    id2label = dict(enumerate(label_names))
    label2id = {name: i for i, name in id2label.items()}
    source = checkpoint or str(cfg.name_or_path)
    config = _from_pretrained(
        AutoConfig,
        source,
        cfg,
        cache_dir,
        "config",
        num_labels=len(label_names),
        id2label=id2label,
        label2id=label2id,
    )
    return _from_pretrained(
        AutoModelForTokenClassification,
        source,
        cfg,
        cache_dir,
        "model",
        config=config,
        ignore_mismatched_sizes=checkpoint is None,
        use_safetensors=True,  # never unpickle weights from a download
    )


def _from_pretrained(
    cls: Any, source: str, cfg: ModelConfig, cache_dir: str | None, what: str, **kwargs: Any
) -> Any:
    is_folder = Path(source).is_dir()
    try:
        return cls.from_pretrained(
            source,
            revision=None if is_folder else cfg.revision,
            cache_dir=cache_dir,
            trust_remote_code=False,
            **kwargs,
        )
    except Exception as err:
        if not is_folder and is_network_error(err):
            raise ModelLoadError(
                f"cannot load {what} of model {source}: the Hub cannot be reached. {offline_advice('model')}"
            ) from err
        if isinstance(err, OSError | ValueError):
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelLoadError(f"cannot load {what} of model {source}: {first}") from err
        raise


def resolve_max_length(cfg: ModelConfig, tokenizer: Any, model_config: Any | None = None) -> int:
    """The configured length, else the tokenizer's (capped at 512 and at the model's position table)."""
    limits = [MAX_LENGTH_CAP]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    positions = getattr(model_config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style models reserve two positions for the padding offset.
        offset = (
            2 if getattr(model_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
        )
        limits.append(positions - offset)
    if cfg.max_length is not None:
        return min([cfg.max_length, *limits[1:]]) if len(limits) > 1 else cfg.max_length
    return min(limits)


# --- The tiny model (quickstart and tests) ---------------------------------------------------------


def build_tiny_tokenizer(
    words: Iterable[str], vocab_size: int, lowercase: bool, out_dir: Path | None = None
) -> BertTokenizerFast:
    """A WordPiece tokenizer trained on the given words; saved to ``out_dir`` when one is given.

    Not repeatable: the tokenizers library breaks ties between equally frequent merges in hash-map order,
    so two processes can build different vocabularies from the same words. Runs get theirs from
    :func:`cached_tiny_tokenizer`, which builds it once per set of words and options.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=False, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=special, min_frequency=1, show_progress=False
    )
    tok.train_from_iterator(words, trainer=trainer)
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        do_lower_case=lowercase,
        model_max_length=MAX_LENGTH_CAP,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        fast.save_pretrained(str(out_dir))
    return fast


def cached_tiny_tokenizer(
    words: list[str], vocab_size: int, lowercase: bool, cache_dir: str | Path | None, out_dir: Path
) -> None:
    """Write the tiny tokenizer for these words and options to ``out_dir``, built once and then reused.

    WordPiece training does not repeat (see :func:`build_tiny_tokenizer`), so without this two runs with
    the same seed and data would train different models, and every sweep trial would get a tokenizer
    of its own. The first build is kept under ``<paths.cache_dir>/ner_tiny_tokenizers/<hash of the
    words, vocab_size, lowercase and the tokenizers version>/``; later runs copy it from there.
    """
    import tokenizers

    h = hashlib.sha256(f"{TINY_TOKENIZER_FORMAT}|{tokenizers.__version__}|{vocab_size}|{lowercase}|".encode())
    h.update("\x1f".join(words).encode())
    folder = cache_subdir(cache_dir, TINY_TOKENIZER_SUBDIR) / h.hexdigest()[:32]
    if not (folder / "tokenizer.json").is_file():
        partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        build_tiny_tokenizer(words, vocab_size, lowercase, partial)
        try:
            os.replace(partial, folder)  # whole or not at all
            log.info("Tiny tokenizer built and cached in %s", folder)
        except OSError:  # another process put its build there first: use that one
            shutil.rmtree(partial, ignore_errors=True)
            log.info("Tiny tokenizer reused from %s (another run built it meanwhile)", folder)
    else:
        log.info("Tiny tokenizer reused from %s", folder)
    shutil.copytree(folder, out_dir)


def build_tiny_model(cfg: ModelConfig, tokenizer: Any, label_names: list[str]) -> Any:
    """A small randomly initialised BERT for token classification (not a pretrained model)."""
    t = cfg.tiny
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        intermediate_size=t.intermediate_size,
        max_position_embeddings=t.max_position_embeddings,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    )
    log.warning(
        "model=tiny: a small RANDOMLY INITIALISED BERT (for the quickstart and tests; its scores mean little)"
    )
    return AutoModelForTokenClassification.from_config(config)
