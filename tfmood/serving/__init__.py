"""Serving exported taggers over TF Serving's REST API.

- `tfmood.serving.Client`: a plain-JSON REST client for TF Serving or the local server;
- `tfmood.serving.server`: the local TF-Serving-compatible REST server (`python -m tfmood.serve`);
- `tfmood.serving.rest`: TF Serving's REST request/response rules (routing, JSON tensors, errors);
- `tfmood.serving.repository`: versioned SavedModels on disk, polled and loaded like TF Serving does;
- `tfmood.serving.config` / `warmup`: models.config files and warm-up records.
"""

from tfmood.serving.client import Client, ServingError  # noqa: F401
