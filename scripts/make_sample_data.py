"""Regenerate ner_experiments/sample_data/ from the licensed sources in ../shared/data.

    python scripts/make_sample_data.py [--shared ../shared/data]

English: the first sentences of WNUT-17 (CC-BY 4.0) that contain an entity, plus some without.
Bengali: sentences of the Bengali news NER set (CC0 1.0), mostly short ones plus a few long ones so the
windowing of long sentences is exercised. Both are mapped to the WikiANN label set (PER, ORG, LOC).

Also writes ``sample_data/tiny_tokenizer/``: the WordPiece tokenizer of ``model=tiny``, trained once on
the sample's training words and shipped, so the quickstart gives the same scores on every machine
(WordPiece training breaks ties in hash-map order: two builds can differ).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WNUT_TO_WIKIANN = {"person": "PER", "location": "LOC", "group": "ORG", "corporation": "ORG"}
BENGALI_TO_WIKIANN = {"PERSON": "PER", "GPE": "LOC", "ORG": "ORG"}
SIZES = {"train": 320, "validation": 80, "test": 80}
OUT = Path(__file__).resolve().parents[1] / "ner_experiments" / "sample_data"


def map_tag(tag: str, mapping: dict[str, str]) -> str:
    if tag == "O":
        return "O"
    prefix, _, kind = tag.partition("-")
    return f"{prefix}-{mapping[kind]}" if kind in mapping else "O"


def read_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    sentences, tokens, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        token, tag = line.split("\t")
        tokens.append(token)
        tags.append(tag)
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def pick(sentences, n, max_words=None, long_ones=0):
    chosen = []
    for tokens, tags in sentences:
        if len(chosen) >= n - long_ones:
            break
        if max_words is None or len(tokens) <= max_words:
            chosen.append((tokens, tags))
    chosen += [s for s in sentences if max_words and len(s[0]) > 120][:long_ones]
    return chosen


def write(lang: str, split: str, rows) -> None:
    folder = OUT / lang
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
        for tokens, tags in rows:
            f.write(
                json.dumps(
                    {"tokens": tokens, "ner_tags": tags, "langs": [lang] * len(tokens)}, ensure_ascii=False
                )
            )
            f.write("\n")


def build_tiny_tokenizer(words: list[str], vocab_size: int = 3000) -> None:
    """Train the tiny model's cased WordPiece tokenizer on ``words`` and save it under sample_data/."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False)
    tok.train_from_iterator(words, trainer=trainer)
    fast = BertTokenizerFast(tokenizer_object=tok, do_lower_case=False, model_max_length=512)
    fast.save_pretrained(str(OUT / "tiny_tokenizer"))


def training_words() -> list[str]:
    words: list[str] = []
    for lang in ("bn", "en"):
        for line in (OUT / lang / "train.jsonl").read_text(encoding="utf-8").splitlines():
            words += json.loads(line)["tokens"]
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    args = parser.parse_args()
    wnut_files = {
        "train": "wnut17train.conll",
        "validation": "emerging.dev.conll",
        "test": "emerging.test.annotated",
    }
    for split, n in SIZES.items():
        en = [
            (t, [map_tag(x, WNUT_TO_WIKIANN) for x in g])
            for t, g in read_conll(args.shared / "wnut17" / wnut_files[split])
        ]
        write("en", split, pick(en, n, max_words=40))
        bn = []
        for line in (
            (args.shared / "bengali-news" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        ):
            row = json.loads(line)
            bn.append((row["tokens"], [map_tag(x, BENGALI_TO_WIKIANN) for x in row["ner_tags"]]))
        write("bn", split, pick(bn, n, max_words=40, long_ones=4))
    build_tiny_tokenizer(training_words())


if __name__ == "__main__":
    main()
