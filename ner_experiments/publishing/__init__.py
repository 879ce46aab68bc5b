"""Publishing and using a trained model: the model card, the Hub upload, prediction and evaluation.

- :mod:`.card` writes ``README.md`` (a Hugging Face model card) from a run's config and results.
- :mod:`.push` stages the upload folder and pushes it with the ``huggingface_hub`` API (no git).
- :mod:`.predict` loads a saved model (run dir, model folder or Hub id) and tags raw or pre-tokenized text.
- :mod:`.evaluate` scores a saved model on any configured data set split, as training does.
- :mod:`.cli` holds the ``ner-publish``, ``ner-predict`` and ``ner-evaluate`` console scripts.
"""
