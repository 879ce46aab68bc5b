"""Model features: :class:`FeatureBuilder` (one builder for training, evaluation and prediction),
:func:`plan_windows` for long sentences, and :func:`~ner_experiments.features.build.build_features`
for whole data sets with an on-disk cache (imported from its module: it needs ``datasets``)."""

from ner_experiments.features.builder import IGNORE, FeatureBuilder, FeatureSettings, align_labels
from ner_experiments.features.windows import Window, plan_windows

__all__ = ["IGNORE", "FeatureBuilder", "FeatureSettings", "Window", "align_labels", "plan_windows"]
