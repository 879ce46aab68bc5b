"""Prediction: word splitting, entities aligned to the input text (Bengali and English), errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ner_experiments.errors import ModelLoadError
from ner_experiments.metrics import compute_ner_metrics
from ner_experiments.model import NerModel
from ner_experiments.publishing.cli import predict_main
from ner_experiments.publishing.predict import decode_entities, predict_texts, predict_tokens, split_words
from tests.helpers import TINY_REPO_ID, sample_sentences

BENGALI = "সিডনি ক্রিকেট গ্রাউন্ড, বিষয়ে আলোচনা।"
ENGLISH = "Sydney  Cricket Ground (in Australia)."


def _forced_model(tiny_run: Path, dest: Path, label: str) -> Path:
    """A copy of the tiny run's model whose classifier always picks ``label`` (deterministic entities)."""
    from safetensors.torch import load_file, save_file

    model_dir = dest / f"forced_{label}"
    shutil.copytree(tiny_run / "model", model_dir)
    names = json.loads((model_dir / "config.json").read_text())["label2id"]
    weights = load_file(model_dir / "model.safetensors")
    weights["classifier.weight"].zero_()
    weights["classifier.bias"].zero_()
    weights["classifier.bias"][names[label]] = 10.0
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    return model_dir


@pytest.fixture(scope="module")
def b_loc_model(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    return NerModel.load(
        str(_forced_model(tiny_run, tmp_path_factory.mktemp("forced"), "B-LOC")), device="cpu"
    )


def test_predictions_on_the_validation_words_score_as_training_scored_them(tiny_run: Path) -> None:
    """NerModel.predict_words (ner-predict's path) tags words exactly as training's evaluation did."""
    model = NerModel.load(str(tiny_run), device="cpu")
    sentences = sample_sentences("bn", "validation")
    labels, scores = model.predict_words([words for words, _ in sentences], batch_size=7)
    metrics = compute_ner_metrics([tags for _, tags in sentences], labels)
    trained = json.loads((tiny_run / "metrics.json").read_text())["validation"]
    assert {k: metrics[k] for k in ("overall_f1", "overall_accuracy", "per_type")} == {
        k: trained[k] for k in ("overall_f1", "overall_accuracy", "per_type")
    }
    assert [len(s) for s in scores] == [len(words) for words, _ in sentences]


def test_split_words_keeps_bengali_words_whole_and_punctuation_apart() -> None:
    words = split_words(BENGALI)
    assert [w for w, _, _ in words] == ["সিডনি", "ক্রিকেট", "গ্রাউন্ড", ",", "বিষয়ে", "আলোচনা", "।"]
    assert all(BENGALI[s:e] == w for w, s, e in words)
    assert [w for w, _, _ in split_words("a,b  c.", "whitespace")] == ["a,b", "c."]


@pytest.mark.parametrize("text", [BENGALI, ENGLISH])
def test_entities_are_aligned_to_the_input_text(b_loc_model, text: str) -> None:
    [record] = predict_texts(b_loc_model, [text])
    words = split_words(text)
    entities = record["entities"]
    assert record["text"] == text and len(entities) == len(words)  # every word is a B-LOC entity
    for entity, (word, start, end) in zip(entities, words, strict=True):
        assert entity["type"] == "LOC" and 0.5 < entity["score"] <= 1.0
        assert (entity["start"], entity["end"]) == (start, end)
        assert text[entity["start"] : entity["end"]] == entity["text"] == word


def test_i_tags_merge_into_one_entity_spanning_the_words(tiny_run: Path, tmp_path: Path) -> None:
    model = NerModel.load(str(_forced_model(tiny_run, tmp_path, "I-PER")), device="cpu")
    [record] = predict_texts(model, ["  রবীন্দ্রনাথ ঠাকুর  "])
    [entity] = record["entities"]
    assert entity["text"] == "রবীন্দ্রনাথ ঠাকুর" and entity["type"] == "PER"
    assert (entity["start"], entity["end"], entity["word_start"], entity["word_end"]) == (2, 19, 0, 2)


def test_long_input_is_windowed_and_every_word_predicted(b_loc_model) -> None:
    text = " ".join(["বাংলাদেশ", "Dhaka"] * 150)  # far longer than max_length=64 pieces
    [record] = predict_texts(b_loc_model, [text])
    assert len(record["entities"]) == 300
    assert all(text[e["start"] : e["end"]] == e["text"] for e in record["entities"])


def test_pretokenized_input_and_empty_sentences(b_loc_model) -> None:
    records = predict_tokens(b_loc_model, [["সিডনি", "ক্রিকেট"], []], batch_size=1)
    assert records[0]["text"] == "সিডনি ক্রিকেট"
    assert [(e["start"], e["end"]) for e in records[0]["entities"]] == [(0, 5), (6, 13)]
    assert records[1]["entities"] == []
    assert predict_texts(b_loc_model, ["", "   "]) == [
        {"text": "", "entities": []},
        {"text": "   ", "entities": []},
    ]


def test_decode_entities_is_lenient_like_seqeval() -> None:
    labels = ["I-PER", "I-PER", "O", "B-LOC", "I-ORG", "B-ORG", "I-ORG"]
    text = "a b c d e f g"
    spans = [(i * 2, i * 2 + 1) for i in range(7)]
    entities = decode_entities(labels, [1.0] * 7, text, spans)
    assert [(e.type, e.text) for e in entities] == [
        ("PER", "a b"),
        ("LOC", "d"),
        ("ORG", "e"),
        ("ORG", "f g"),
    ]


def test_cli_reads_a_file_and_writes_json_lines(tiny_run: Path, tmp_path: Path, capsys) -> None:
    model_dir = _forced_model(tiny_run, tmp_path, "B-ORG")
    src = tmp_path / "in.txt"
    src.write_text(f"{BENGALI}\n\n{ENGLISH}\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert (
        predict_main(
            ["--model", str(model_dir), "--input", str(src), "--output", str(out), "--device", "cpu"]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == [BENGALI, "", ENGLISH]
    assert rows[0]["entities"][0] == {
        **rows[0]["entities"][0],
        "text": "সিডনি",
        "type": "ORG",
        "start": 0,
        "end": 5,
    }
    src.write_text('["সিডনি", "ক্রিকেট"]\n{"tokens": ["Sydney"]}\n', encoding="utf-8")
    assert predict_main(["--model", str(model_dir), "--input", str(src), "--pretokenized"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["tokens"] for line in lines] == [["সিডনি", "ক্রিকেট"], ["Sydney"]]


def test_cli_on_a_run_dir_prints_one_json_line_per_sentence(tiny_run: Path, capsys) -> None:
    assert predict_main(["--model", str(tiny_run), BENGALI, "Sydney Cricket Ground"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["text"] for line in lines] == [BENGALI, "Sydney Cricket Ground"]


def test_errors_missing_dir_no_label_names_empty_input(tiny_run: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        NerModel.load(str(tmp_path / "missing_run"))
    with pytest.raises(ModelLoadError, match="holds no saved model"):
        NerModel.load(str(tmp_path))
    unlabeled = tmp_path / "unlabeled"
    shutil.copytree(tiny_run / "model", unlabeled)
    config = json.loads((unlabeled / "config.json").read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(7)}
    config["label2id"] = {f"LABEL_{i}": i for i in range(7)}
    (unlabeled / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="no NER label names"):
        NerModel.load(str(unlabeled))
    assert predict_main(["--model", str(tiny_run), "  "]) == 2
    assert predict_main(["--model", str(tmp_path / "nope"), "text"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: empty input") and err[1].startswith("error: no model at")


def test_hub_id_offline_fails_fast_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(ModelLoadError) as info:
        NerModel.load("me/bengali-ner", cache_dir=str(tmp_path / "cache"))
    message = str(info.value)
    assert "me/bengali-ner" in message and "HF_HUB_OFFLINE=1" in message and "local copy" in message
    assert "\n" not in message


def test_hub_id_loads_from_a_populated_cache_offline(
    tiny_run: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    # The Hub cache layout, filled with the upload folder training staged (hub.dry_run=true).
    commit = "0" * 40
    repo = tmp_path / "cache" / f"models--{TINY_REPO_ID.replace('/', '--')}"
    shutil.copytree(tiny_run / "hub_upload", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = NerModel.load(TINY_REPO_ID, cache_dir=str(tmp_path / "cache"), device="cpu")
    assert model.source == TINY_REPO_ID and model.label_names[1] == "B-PER"
    assert model.max_length == 64 and model.window_stride == 16  # from the uploaded training_config.yaml
    [record] = predict_texts(model, [BENGALI])
    assert record["text"] == BENGALI
