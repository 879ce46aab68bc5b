"""CPU dropout from 16-bit masks drops as often as asked, keeps the expected value, and repeats by seed."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertForTokenClassification

from ner_experiments.dropout_masks import CpuDropout, cpu_dropout, drop_threshold, use_cpu_dropout
from tests.conftest import SHARED_DATA
from tests.helpers import run_side_by_side_benchmark, run_train


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_drops_each_element_with_probability_p_in_every_position(p):
    torch.manual_seed(0)
    out = cpu_dropout(torch.ones(400_000), p)
    dropped = out == 0
    sigma = (p * (1 - p) / dropped.numel()) ** 0.5
    assert abs(dropped.float().mean().item() - p) < 5 * sigma
    # Each 64-bit draw gives four numbers: every one of the four positions drops as often.
    per_position = dropped.view(-1, 4).float().mean(0)
    assert (per_position - p).abs().max().item() < 5 * sigma * 2
    # Kept elements are scaled so the expected value is the input.
    kept = out[~dropped]
    assert torch.allclose(kept, torch.full_like(kept, 65536 / (65536 - drop_threshold(p))))
    assert abs(out.mean().item() - 1.0) < 0.01


def test_the_drop_probability_is_p_rounded_to_a_multiple_of_1_over_65536():
    assert drop_threshold(0.1) == 6554  # drops with probability 0.100006
    assert drop_threshold(0.0) == 0 and drop_threshold(1.0) == 65536


def test_edge_probabilities_and_eval_mode():
    x = torch.randn(8, 5)
    assert torch.equal(cpu_dropout(x, 0.0), x)
    assert torch.equal(cpu_dropout(x, 1.0), torch.zeros_like(x))
    layer = CpuDropout(0.5).eval()
    assert torch.equal(layer(x), x)


def test_gradient_passes_only_through_kept_elements_with_the_same_scale():
    torch.manual_seed(3)
    x = torch.randn(64, 32, requires_grad=True)
    out = CpuDropout(0.2)(x)
    out.sum().backward()
    expected = torch.where(out == 0, 0.0, 65536 / (65536 - drop_threshold(0.2)))
    assert torch.equal(x.grad, expected)


def test_keeps_dtype_and_works_in_place():
    torch.manual_seed(1)
    x = torch.randn(32, 16).to(torch.bfloat16)
    assert cpu_dropout(x, 0.1).dtype == torch.bfloat16
    y = torch.ones(1000)
    CpuDropout(0.3, inplace=True)(y)
    assert 0.2 < (y == 0).float().mean().item() < 0.4


def test_same_seed_same_masks():
    masks = []
    for _ in range(2):
        torch.manual_seed(7)
        masks.append(cpu_dropout(torch.ones(10_000), 0.1))
    assert torch.equal(masks[0], masks[1])


def test_swaps_every_dropout_of_a_bert_model_and_back_without_touching_its_weights():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    model = BertForTokenClassification(config)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    plain = sum(type(m) is torch.nn.Dropout for m in model.modules())
    # embeddings, classifier, 3 per layer (self-attention's only hands its p to scaled_dot_product_attention)
    assert use_cpu_dropout(model) == plain == 8
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert model.state_dict().keys() == state.keys()
    model.eval()
    ids = torch.randint(0, 100, (2, 7))
    with torch.no_grad():
        swapped_logits = model(input_ids=ids).logits
    assert use_cpu_dropout(model, False) == plain
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, swapped_logits)  # eval: dropout is off either way
    assert all(type(m) is torch.nn.Dropout for m in model.modules() if isinstance(m, torch.nn.Dropout))


def _trained_weights(tmp_path, model_dir, name: str, enabled: str) -> tuple[dict, dict]:
    out = tmp_path / name
    result = run_train(
        "experiment=quickstart",
        # A saved tokenizer: model=tiny trains one per run, and WordPiece training breaks ties at random.
        "model=local",
        f"model.name_or_path={model_dir}",
        "trainer=fast",
        "trainer.num_train_epochs=1",
        "run_test=false",
        f"trainer.fast_cpu_dropout={enabled}",
        f"paths.output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics_file,) = out.glob("**/metrics.json")
    (weights,) = out.glob("**/model/model.safetensors")
    return json.loads(metrics_file.read_text()), load_file(weights)


def test_train_py_with_fast_cpu_dropout_repeats_by_seed(tmp_path, tiny_local_model):
    """End to end: trainer=fast on CPU uses it; the same seed gives the same model, torch's dropout another."""
    first_metrics, first = _trained_weights(tmp_path, tiny_local_model, "first", "true")
    _, second = _trained_weights(tmp_path, tiny_local_model, "second", "true")
    torch_metrics, with_torch_dropout = _trained_weights(tmp_path, tiny_local_model, "torch", "false")
    assert first_metrics["speed"]["torch_settings"]["fast_cpu_dropout"] is True
    assert torch_metrics["speed"]["torch_settings"]["fast_cpu_dropout"] is False
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], with_torch_dropout[k]) for k in first)


@pytest.mark.skipif(not (SHARED_DATA / "wikiann").is_dir(), reason="../shared/data/wikiann is not here")
def test_side_by_side_benchmark_runs_and_reports_the_ratio():
    stdout = run_side_by_side_benchmark("dropout_masks.py")
    assert "| (b) 16-bit masks |" in stdout
    dropped = float(stdout.rsplit("(b) dropped ", 1)[1].split()[0])
    assert abs(dropped - 0.1) < 0.002
