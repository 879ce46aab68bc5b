"""Where a model goes wrong, entity by entity: six kinds of outcome, and the SemEval-2013 scores.

Each sentence's gold and predicted entities (decoded as seqeval scores them,
:func:`~ner_experiments.metrics.decode_entities`) are matched one to one, in three rounds:

1. ``correct``: a prediction with the gold entity's span and type.
2. ``wrong_type``: a prediction with the gold entity's span and another type.
3. Among the entities still unmatched, overlapping pairs: ``wrong_boundary`` (same type) or
   ``wrong_both`` (other type). Pairs are taken greedily, same type first, then the larger overlap (in
   words), then the earlier gold start, then the earlier predicted start.

A gold entity left unmatched is ``missed``; a predicted one is ``spurious``. Every gold entity gets one
kind, so ``correct + wrong_type + wrong_boundary + wrong_both + missed`` is the number of gold entities,
and ``correct + wrong_type + wrong_boundary + wrong_both + spurious`` the number predicted. Per type,
a pair counts under its gold entity's type, a spurious entity under its predicted type.

The SemEval-2013 task 9.1 scores (strict, exact, partial, type; correct / incorrect / partial / missed /
spurious counts) come from nervaluate, given the same decoded entities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ner_experiments.metrics import Span

ERROR_KINDS = ("correct", "wrong_type", "wrong_boundary", "wrong_both", "missed", "spurious")
GOLD_KINDS = ERROR_KINDS[:5]  # the kinds a gold entity can get; they add up to the gold entities
SEMEVAL_SCHEMES = {"strict": "strict", "exact": "exact", "partial": "partial", "type": "ent_type"}
SEMEVAL_COUNTS = ("correct", "incorrect", "partial", "missed", "spurious")


@dataclass(frozen=True)
class Outcome:
    """One matched pair, or one unmatched entity, of a sentence."""

    kind: str
    gold: Span | None
    predicted: Span | None

    @property
    def type(self) -> str:
        """The type it counts under: the gold entity's, else the predicted one's."""
        span = self.gold if self.gold is not None else self.predicted
        assert span is not None
        return span[0]


def classify_entities(gold: Sequence[Span], predicted: Sequence[Span]) -> list[Outcome]:
    """The outcome of every gold and predicted entity of one sentence (see the module doc for the rules)."""
    outcomes: list[Outcome] = []
    free_gold, free_pred = set(range(len(gold))), set(range(len(predicted)))

    def take(kind: str, g: int, p: int) -> None:
        outcomes.append(Outcome(kind, gold[g], predicted[p]))
        free_gold.discard(g)
        free_pred.discard(p)

    by_span = {(s, e): i for i, (_, s, e) in enumerate(gold)}  # spans of one sentence never repeat
    for same_type in (True, False):
        for p, (kind, start, end) in enumerate(predicted):
            g = by_span.get((start, end))
            if g is not None and g in free_gold and p in free_pred and (gold[g][0] == kind) == same_type:
                take("correct" if same_type else "wrong_type", g, p)
    pairs = []
    for g in free_gold:
        for p in free_pred:
            overlap = min(gold[g][2], predicted[p][2]) - max(gold[g][1], predicted[p][1])
            if overlap > 0:
                other_type = gold[g][0] != predicted[p][0]
                pairs.append((other_type, -overlap, gold[g][1], predicted[p][1], g, p))
    for other_type, _, _, _, g, p in sorted(pairs):
        if g in free_gold and p in free_pred:
            take("wrong_both" if other_type else "wrong_boundary", g, p)
    outcomes += [Outcome("missed", gold[g], None) for g in sorted(free_gold)]
    outcomes += [Outcome("spurious", None, predicted[p]) for p in sorted(free_pred)]
    return outcomes


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(ERROR_KINDS, 0)


def count_outcomes(
    outcomes_per_sentence: Sequence[Sequence[Outcome]], types: Sequence[str]
) -> dict[str, Any]:
    """``{"overall": {kind: n, ...}, "per_type": {type: {kind: n, ...}}}``, every kind and type present."""
    overall = _zero_counts()
    per_type = {t: _zero_counts() for t in types}
    for outcomes in outcomes_per_sentence:
        for outcome in outcomes:
            overall[outcome.kind] += 1
            per_type.setdefault(outcome.type, _zero_counts())[outcome.kind] += 1
    return {"overall": overall, "per_type": dict(sorted(per_type.items()))}


def semeval_scores(
    gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]], types: Sequence[str]
) -> dict[str, Any]:
    """nervaluate's SemEval-2013 scores, overall and per type, for entities already decoded.

    Sentences whose predicted entities equal the gold ones are counted as all correct without going
    through nervaluate (that is what it returns for them; it keeps the scoring well within the time of
    the forward pass on data where most sentences are right).
    """
    from nervaluate import Evaluator
    from nervaluate.entities import EvaluationResult

    def as_dicts(sentence: Sequence[Span]) -> list[dict[str, Any]]:
        return [{"label": k, "start": s, "end": e - 1} for k, s, e in sentence]  # nervaluate: inclusive end

    differ = [i for i, (g, p) in enumerate(zip(gold, predicted, strict=True)) if sorted(g) != sorted(p)]
    results: dict[str, Any] = {"overall": {}, "entities": {}}
    if differ:
        true = [as_dicts(gold[i]) for i in differ]
        pred = [as_dicts(predicted[i]) for i in differ]
        results = Evaluator(true, pred, tags=list(types), loader="dict").evaluate()
    right: dict[str, int] = {}
    differ_set = set(differ)
    for i, sentence in enumerate(gold):
        if i not in differ_set:
            for kind, _, _ in sentence:
                right[kind] = right.get(kind, 0) + 1

    def block(found: dict[str, Any], n_right: int) -> dict[str, Any]:
        out = {}
        for name, key in SEMEVAL_SCHEMES.items():
            r = found.get(key) or EvaluationResult()
            r = EvaluationResult(r.correct + n_right, r.incorrect, r.partial, r.missed, r.spurious)
            r.compute_metrics(partial_or_type=key in ("partial", "ent_type"))
            out[name] = {c: getattr(r, c) for c in SEMEVAL_COUNTS} | {
                "precision": r.precision,
                "recall": r.recall,
                "f1": r.f1,
            }
        return out

    return {
        "overall": block(results["overall"], sum(right.values())),
        "per_type": {t: block(results["entities"].get(t, {}), right.get(t, 0)) for t in sorted(types)},
    }


def error_breakdown(
    gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]], types: Sequence[str]
) -> dict[str, Any]:
    """The ``errors`` block of a split in ``metrics.json``: the six kinds overall and per type, the
    number of gold and predicted entities, and the SemEval-2013 scores."""
    counts = count_outcomes([classify_entities(g, p) for g, p in zip(gold, predicted, strict=True)], types)
    return {
        **counts,
        "gold_entities": sum(len(s) for s in gold),
        "predicted_entities": sum(len(s) for s in predicted),
        "semeval": semeval_scores(gold, predicted, types),
    }


def entity_types(label_names: Sequence[str]) -> list[str]:
    """The entity types of a label set (``B-PER``, ``I-PER`` → ``PER``), sorted."""
    return sorted({name[2:] for name in label_names if name[:2] in ("B-", "I-")})


def format_error_table(title: str, errors: dict[str, Any]) -> str:
    """A plain-text table of the six kinds per type and overall, then the SemEval-2013 F1 scores."""
    head = "".join(f"{k:>15}" for k in ERROR_KINDS)
    lines = [title, f"{'type':<16}{head}"]
    rows = [*errors["per_type"].items(), ("overall", errors["overall"])]
    for name, counts in rows:
        lines.append(f"{name:<16}" + "".join(f"{counts[k]:>15d}" for k in ERROR_KINDS))
    semeval = errors["semeval"]["overall"]
    lines.append(
        "SemEval-2013 F1: " + ", ".join(f"{name} {semeval[name]['f1']:.4f}" for name in SEMEVAL_SCHEMES)
    )
    return "\n".join(lines)


def summary_values(errors: dict[str, Any], prefix: str) -> dict[str, float]:
    """The overall counts and SemEval-2013 F1s as flat ``<prefix>/errors/<kind>`` keys (a tracker summary)."""
    out: dict[str, float] = {f"{prefix}/errors/{k}": errors["overall"][k] for k in ERROR_KINDS}
    for name in SEMEVAL_SCHEMES:
        out[f"{prefix}/errors/semeval_{name}_f1"] = errors["semeval"]["overall"][name]["f1"]
    return out
