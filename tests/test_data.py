"""The data readers (CoNLL, JSON lines, Hub layout, shipped sample) and every data error they report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from ner_experiments.config import DatasetConfig
from ner_experiments.data.contract import NerData, validate_ner_data
from ner_experiments.data.readers import WIKIANN_LABELS, load_ner_data, read_conll, read_data, read_jsonl
from ner_experiments.errors import DataError, NerExperimentError
from ner_experiments.labels import check_label_names, is_valid_tag_name, sorted_label_names, tag_problem
from tests.helpers import TINY_SENTENCES, make_conll_dir, make_jsonl_dir, write_hub_layout


def files_config(data_dir: Path, **kwargs) -> DatasetConfig:
    return DatasetConfig(name="test", source="files", data_dir=str(data_dir), **kwargs)


def load_files(data_dir: Path, **kwargs) -> NerData:
    return load_ner_data(files_config(data_dir, **kwargs))


# --- CoNLL -----------------------------------------------------------------------------------------


def test_conll_tab_separated(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("New York\tB-LOC\nis\tO\n\nরবীন্দ্রনাথ\tB-PER\n", encoding="utf-8")
    tokens, tags = read_conll(path)
    # A tab-separated token may contain spaces; the last sentence needs no blank line after it.
    assert tokens == [["New York", "is"], ["রবীন্দ্রনাথ"]]
    assert tags == [["B-LOC", "O"], ["B-PER"]]


def test_conll_space_separated_with_extra_columns_and_docstart(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\n",
        encoding="utf-8",
    )
    tokens, tags = read_conll(path)
    assert tokens == [["EU", "rejects"], ["Peter"]]
    assert tags == [["B-ORG", "O"], ["B-PER"]]


def test_conll_whitespace_only_lines_and_crlf_end_sentences(tmp_path):
    path = tmp_path / "a.conll"
    path.write_bytes("John\tB-PER\r\nSmith\tI-PER\r\n\t\r\nঢাকা\tB-LOC\r\n   \r\nParis  B-LOC\r\n".encode())
    tokens, tags = read_conll(path)
    assert tokens == [["John", "Smith"], ["ঢাকা"], ["Paris"]]
    assert tags == [["B-PER", "I-PER"], ["B-LOC"], ["B-LOC"]]


@pytest.mark.parametrize("separator", ["\t", " "])
def test_conll_folder_loads_into_the_contract(tmp_path, separator):
    make_conll_dir(tmp_path, separator=separator)
    data = load_files(tmp_path)
    assert data.label_names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert set(data.splits) == {"train", "validation", "test"}
    assert data.splits["train"]["tokens"] == [w for w, _ in TINY_SENTENCES]
    assert data.tag_names("test") == [t for _, t in TINY_SENTENCES]
    assert data.source == str(tmp_path)


def test_declared_label_names_set_the_order(tmp_path):
    make_conll_dir(tmp_path)
    labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    data = load_files(tmp_path, label_names=labels)
    assert data.label_names == labels
    assert data.tag_names("train") == [t for _, t in TINY_SENTENCES]


def test_sizes_are_cut_to_max_samples(tmp_path):
    make_conll_dir(tmp_path)
    data = load_files(tmp_path, max_train_samples=2, max_eval_samples=1)
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [2, 1, 1]


# --- JSON lines ------------------------------------------------------------------------------------


def test_jsonl_with_ner_tags_or_tags_key_and_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [
        {"tokens": ["ঢাকা", "শহর"], "ner_tags": ["B-LOC", "O"]},
        {"tokens": ["Bob"], "tags": ["B-PER"], "langs": ["en"]},
    ]
    path.write_text(
        json.dumps(rows[0], ensure_ascii=False) + "\n\n" + json.dumps(rows[1]) + "\n", encoding="utf-8"
    )
    tokens, tags = read_jsonl(path)
    assert tokens == [["ঢাকা", "শহর"], ["Bob"]]
    assert tags == [["B-LOC", "O"], ["B-PER"]]


def test_jsonl_folder_with_integer_tags_needs_declared_labels(tmp_path):
    ints = [(["Bob", "runs"], [1, 0]), (["ঢাকা"], [5])]
    make_jsonl_dir(tmp_path, {"train": ints, "validation": ints, "test": ints})
    data = load_files(tmp_path, label_names=WIKIANN_LABELS)
    assert data.tag_names("train") == [["B-PER", "O"], ["B-LOC"]]
    with pytest.raises(DataError) as err:
        load_files(tmp_path)
    message = str(err.value)
    assert "numeric tags without label names (3)" in message  # once per file, not once per tag
    assert "fix: set dataset.label_names=" in message
    assert f"{tmp_path / 'train.jsonl'}:1: tags are numbers, e.g. 1 (word 'Bob')" in message


def test_jsonl_integer_tag_outside_declared_labels(tmp_path):
    rows = [(["Bob"], [9])]
    make_jsonl_dir(tmp_path, {"train": rows, "validation": rows, "test": rows})
    with pytest.raises(DataError) as err:
        load_files(tmp_path, label_names=WIKIANN_LABELS)
    assert "tag id outside the label set (3): '9' 3" in str(err.value)
    assert f"{tmp_path / 'test.jsonl'}:1: tag id 9 (word 'Bob'): the label set has 7 labels" in str(err.value)


def test_sample_data_in_both_languages():
    for language in ("bn", "en"):
        data = load_ner_data(DatasetConfig(name="sample", source="sample", language=language))
        assert data.label_names == WIKIANN_LABELS
        assert data.language == language
        assert all(len(data.splits[s]) > 0 for s in ("train", "validation", "test"))
    with pytest.raises(DataError, match="no language 'xx': use dataset.language=bn or en$"):
        load_ner_data(DatasetConfig(name="sample", source="sample", language="xx"))


# --- Hub layout ------------------------------------------------------------------------------------

HUB_SPLITS = {"train": TINY_SENTENCES, "validation": TINY_SENTENCES[:2], "test": TINY_SENTENCES[2:]}


@pytest.fixture
def hub_dir(tmp_path):
    folder = tmp_path / "wikiann_copy"
    write_hub_layout(folder, "en", HUB_SPLITS, WIKIANN_LABELS)
    write_hub_layout(folder, "bn", {k: v[::-1] for k, v in HUB_SPLITS.items()}, WIKIANN_LABELS)
    return folder


def hub_config(folder: Path, config_name: str | None, **kwargs) -> DatasetConfig:
    return DatasetConfig(name="hub", source="hub", path=str(folder), config_name=config_name, **kwargs)


def test_hub_layout_folder_reads_labels_from_the_classlabel_feature(hub_dir, tmp_path):
    cache = str(tmp_path / "cache")
    data = load_ner_data(hub_config(hub_dir, "en"), cache_dir=cache)
    assert data.label_names == WIKIANN_LABELS
    assert {s: len(ds) for s, ds in data.splits.items()} == {"train": 4, "validation": 2, "test": 2}
    assert data.splits["train"].column_names == ["tokens", "tags"]
    assert data.tag_names("test") == [t for _, t in TINY_SENTENCES[2:]]
    other = load_ner_data(hub_config(hub_dir, "bn"), cache_dir=cache)
    assert other.splits["train"]["tokens"] == [w for w, _ in TINY_SENTENCES[::-1]]


def test_hub_layout_declared_labels_are_ignored_for_a_classlabel_feature(hub_dir, tmp_path, caplog):
    cfg = hub_config(hub_dir, "en", label_names=["O", "B-PER", "I-PER"])
    data = load_ner_data(cfg, cache_dir=str(tmp_path / "cache"))
    assert data.label_names == WIKIANN_LABELS
    assert "dataset.label_names is ignored" in caplog.text


def test_hub_layout_with_string_tags(tmp_path):
    folder = tmp_path / "strings"
    (folder / "data").mkdir(parents=True)
    for split, rows in HUB_SPLITS.items():
        Dataset.from_dict({"tokens": [w for w, _ in rows], "ner_tags": [t for _, t in rows]}).to_parquet(
            str(folder / "data" / f"{split}-00000-of-00001.parquet")
        )
    data = load_ner_data(hub_config(folder, None), cache_dir=str(tmp_path / "cache"))
    assert data.label_names == sorted_label_names({t for _, tags in TINY_SENTENCES for t in tags})
    assert data.tag_names("train") == [t for _, t in TINY_SENTENCES]


def test_hub_layout_errors(hub_dir, tmp_path):
    cache = str(tmp_path / "cache")
    with pytest.raises(DataError, match=r"has no split 'dev' \(it has train, validation, test\)"):
        load_ner_data(hub_config(hub_dir, "en", validation_split="dev"), cache_dir=cache)
    with pytest.raises(
        DataError, match=r"has no column 'labels'.*set dataset.tokens_column / dataset.tags_column"
    ):
        load_ner_data(hub_config(hub_dir, "en", tags_column="labels"), cache_dir=cache)
    with pytest.raises(DataError, match="dataset.config_name"):
        load_ner_data(hub_config(hub_dir, "xx"), cache_dir=cache)
    with pytest.raises(DataError, match="was not found: check dataset.path"):
        load_ner_data(hub_config(tmp_path / "no_such_folder", "en"), cache_dir=cache)


def test_hub_layout_invalid_classlabel_name(tmp_path):
    folder = tmp_path / "bad_labels"
    write_hub_layout(
        folder, "en", {s: [(["Bob"], ["PERSON"])] for s in ("train", "validation", "test")}, ["O", "PERSON"]
    )
    with pytest.raises(DataError, match="invalid tag name 'PERSON'"):
        load_ner_data(hub_config(folder, "en"), cache_dir=str(tmp_path / "cache"))


# --- Data errors: one message naming the file (and line) and the fix --------------------------------


def test_line_without_a_tag_names_file_and_line(tmp_path):
    make_conll_dir(tmp_path)
    (tmp_path / "validation.conll").write_text("John\tB-PER\nSmith\tI-PER\nlonely\n\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_files(tmp_path)
    assert str(err.value).splitlines() == [
        f"{tmp_path}: 1 data problem (line without a tag 1), listed by kind with the fix:",
        "  line without a tag (1)",
        "    fix: write 'token<TAB>tag'; a blank line ends a sentence",
        f"    {tmp_path / 'validation.conll'}:3: 'lonely'",
    ]


def test_length_mismatch_names_file_and_line(tmp_path):
    make_jsonl_dir(tmp_path)
    good = json.dumps({"tokens": ["a"], "ner_tags": ["O"]})
    bad = json.dumps({"tokens": ["Bob", "Smith"], "ner_tags": ["B-PER"]})
    (tmp_path / "train.jsonl").write_text(f"{good}\n{bad}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_files(tmp_path)
    assert f"{tmp_path / 'train.jsonl'}:2: 2 tokens but 1 tags" in str(err.value)
    assert "fix: every token needs one tag" in str(err.value)


def test_length_mismatch_in_a_hub_data_set_is_caught_by_validation():
    ds = Dataset.from_dict({"tokens": [["a", "b"], ["c"], ["d"]], "tags": [[0], [0], [0, 0]]})
    data = NerData(splits={"train": ds}, label_names=["O"], source="somewhere")
    with pytest.raises(DataError) as err:
        validate_ner_data(data)
    lines = str(err.value).splitlines()
    assert (
        lines[0] == "somewhere: 2 data problems (token and tag counts differ 2), listed by kind with the fix:"
    )
    assert lines[3:] == [
        "    somewhere train sentence 1: 2 tokens but 1 tags",
        "    somewhere train sentence 3: 1 tokens but 2 tags",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "5",
        "null",
        '"text"',
        '["Bob", "B-PER"]',
        '{"tokens": ["Bob"]}',
        '{"tokens": "Bob", "ner_tags": ["O"]}',
    ],
)
def test_jsonl_line_that_is_not_a_sentence_object(tmp_path, line):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"tokens": ["a"], "ner_tags": ["O"]}) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"train\.jsonl:2: expected an object with 'tokens' and 'ner_tags' lists"
    ):
        read_jsonl(path)


def test_jsonl_not_json(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"tokens": ["a"], "ner_tags": ["O"]}\n{"tokens": [\n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_jsonl(path)
    assert "line not valid JSON (1)" in str(err.value) and "fix: write one JSON object per line" in str(
        err.value
    )
    assert f"{path}:2: Expecting value: '{{\"tokens\": ['" in str(err.value)


def test_tag_outside_the_declared_label_set(tmp_path):
    make_conll_dir(tmp_path)  # has PER, ORG and LOC
    with pytest.raises(DataError) as err:
        load_files(tmp_path, label_names=["O", "B-PER", "I-PER"])
    message = str(err.value)
    # every occurrence in every split, with its line
    assert "tag not in dataset.label_names (12): 'B-LOC' 6, 'B-ORG' 3, 'I-ORG' 3" in message
    assert f"{tmp_path / 'train.conll'}:5: 'B-LOC' (word 'Paris')" in message
    assert f"{tmp_path / 'test.conll'}:12: 'I-ORG' (word 'Corp')" in message
    assert "fix: add it to dataset.label_names or fix the data" in message


@pytest.mark.parametrize(
    ("tag", "kind"),
    [
        ("PER", "tag without B-/I-"),
        ("creative-work", "tag without B-/I-"),
        ("U-PER", "BILOU/IOBES tag"),
        ("E-PER", "BILOU/IOBES tag"),
        ("B_PER", "invalid tag name"),
        ("b-PER", "invalid tag name"),
        ("B-", "invalid tag name"),
        ("X-PER", "invalid tag name"),
        ("B PER", "invalid tag name"),
        ("o", "invalid tag name"),
    ],
)
def test_invalid_tag_name_in_a_file(tmp_path, tag, kind):
    make_conll_dir(tmp_path)
    (tmp_path / "test.conll").write_text(f"Bob\tO\n\nAlice\t{tag}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_files(tmp_path)
    message = str(err.value)
    assert f"  {kind} (1): {tag!r} 1\n" in message
    assert "O, B-<TYPE> or I-<TYPE> (IOB2)" in message
    assert f"{tmp_path / 'test.conll'}:3: {tag!r} (word 'Alice')" in message


def test_invalid_declared_label_names():
    with pytest.raises(DataError, match=r"invalid tag name 'PER' \(1 invalid in all\)"):
        check_label_names(["O", "PER"], "where")
    with pytest.raises(DataError, match="label 'O' is listed twice"):
        check_label_names(["O", "B-PER", "O"], "where")
    assert is_valid_tag_name("B-creative-work") and is_valid_tag_name("O") and not is_valid_tag_name("I-")


@pytest.mark.parametrize("content", ["", "\n\n\t\n", "-DOCSTART- -X- -X- O\n\n"])
def test_empty_split(tmp_path, content):
    make_conll_dir(tmp_path)
    (tmp_path / "validation.conll").write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_files(tmp_path)
    assert "empty split (1)" in str(err.value) and "every split needs at least one sentence" in str(err.value)
    assert f"{tmp_path} validation: the validation split has no sentences" in str(err.value)


def test_empty_split_of_sentences_without_words(tmp_path):
    make_jsonl_dir(tmp_path)
    (tmp_path / "test.jsonl").write_text('{"tokens": [], "ner_tags": []}\n', encoding="utf-8")
    with pytest.raises(DataError, match="the test split has no sentences"):
        load_files(tmp_path)


def test_non_utf8_file_names_file_and_line(tmp_path):
    make_conll_dir(tmp_path)
    (tmp_path / "train.conll").write_bytes("Bob\tB-PER\n\nJos\xe9\tB-PER\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        load_files(tmp_path)
    assert "fix: convert the file to UTF-8, e.g. iconv -f <encoding> -t UTF-8" in str(err.value)
    assert f"{tmp_path / 'train.conll'}:3: b'Jos\\xe9\\tB-PER'" in str(err.value)


def test_missing_split_file(tmp_path):
    make_conll_dir(tmp_path)
    (tmp_path / "test.conll").unlink()
    with pytest.raises(
        DataError, match=r"no test file in .*: expected test.conll / .jsonl \(or set dataset.test_file\)"
    ):
        load_files(tmp_path)


def test_named_split_file_is_used(tmp_path):
    make_conll_dir(tmp_path)
    (tmp_path / "test.conll").rename(tmp_path / "heldout.iob2")
    data = load_files(tmp_path, test_file="heldout.iob2")
    assert len(data.splits["test"]) == len(TINY_SENTENCES)


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match=r"dataset.data_dir=.*nope does not exist: give a folder"):
        load_files(tmp_path / "nope")


def test_data_errors_are_user_errors():
    assert issubclass(DataError, NerExperimentError)
    assert DataError.exit_code != 0


# --- Every problem at once ---------------------------------------------------------------------------


def test_every_problem_of_every_file_in_one_error(tmp_path):
    make_conll_dir(tmp_path)
    lines = ["Bob\tB-PER", "\tO", "lonely", "Smith\tB_PER", ""]
    lines += [f"day{i}\tTIM" for i in range(25)]  # 25 bare tags: 20 are listed, then "... and 5 more"
    (tmp_path / "train.conll").write_text("\n".join(lines) + "\n", encoding="utf-8")
    good = json.dumps({"tokens": ["a"], "ner_tags": ["O"]})
    rows = [
        good,
        '{"tokens": ["a", "b"], "ner_tags": ["O"]}',
        "{oops",
        '{"tokens": ["", "b"], "ner_tags": ["O", "O"]}',
    ]
    (tmp_path / "test.conll").unlink()
    (tmp_path / "test.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_files(tmp_path)
    message = str(err.value).splitlines()
    assert message[0] == (
        f"{tmp_path}: 31 data problems (line not valid JSON 1, token and tag counts differ 1, line without a tag 1, "
        "empty token 2, tag without B-/I- 25, invalid tag name 1), listed by kind with the fix:"
    )
    train, test = tmp_path / "train.conll", tmp_path / "test.jsonl"
    for expected in [
        f"    {train}:2: '\\tO'",
        f"    {train}:3: 'lonely'",
        f"    {train}:4: 'B_PER' (word 'Smith')",
        f"    {train}:6: 'TIM' (word 'day0')",
        f"    {train}:25: 'TIM' (word 'day19')",
        "    ... and 5 more",
        f"    {test}:2: 2 tokens but 1 tags",
        f"    {test}:3: Expecting property name enclosed in double quotes: '{{oops'",
        f"    {test}:4: token 1 of 2 is ''",
        "  tag without B-/I- (25): 'TIM' 25",
    ]:
        assert expected in message
    assert f"    {train}:26: 'TIM' (word 'day20')" not in message


def test_bom_is_dropped_and_crlf_read_as_line_ends(tmp_path):
    path = tmp_path / "a.conll"
    path.write_bytes("\ufeffরবিবার\tB-TIM\r\nসকালে\tI-TIM\r\n\r\nঢাকা\tB-GPE\r\n".encode())
    tokens, tags = read_conll(path)
    assert tokens == [["রবিবার", "সকালে"], ["ঢাকা"]]  # no BOM left in the first token
    assert tags == [["B-TIM", "I-TIM"], ["B-GPE"]]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(b'\xef\xbb\xbf{"tokens": ["a"], "ner_tags": ["O"]}\r\n')
    assert read_jsonl(jsonl) == ([["a"]], [["O"]])


def test_unicode_line_separators_inside_a_token_do_not_split_the_line(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("a\u2028b\tO\nc\x85d\tO\n", encoding="utf-8")
    assert read_conll(path) == ([["a\u2028b", "c\x85d"]], [["O", "O"]])


def test_lenient_reading_returns_the_problems_and_the_words_without_them(tmp_path):
    make_conll_dir(tmp_path)
    (tmp_path / "train.conll").write_text("Bob\tB-PER\n\tO\nruns\tO\nfast\tFAST\n\n", encoding="utf-8")
    reading = read_data(files_config(tmp_path))
    assert [p.kind for p in reading.problems] == ["empty_token", "bare_tag"]
    assert reading.data.splits["train"]["tokens"] == [["Bob", "runs"]]
    assert reading.data.tag_names("train") == [["B-PER", "O"]]


def test_tag_problem_kinds():
    assert [tag_problem(t) for t in ("O", "B-PER", "I-creative-work")] == [None, None, None]
    assert [tag_problem(t) for t in ("TIM", "PERSON", "date")] == ["bare_tag"] * 3
    assert [tag_problem(t) for t in ("U-PER", "L-PER", "S-LOC", "E-LOC")] == ["other_scheme"] * 4
    assert [tag_problem(t) for t in ("B_PER", "b-PER", "B-", "X-PER", "o", "B", "1")] == ["invalid_tag"] * 7
