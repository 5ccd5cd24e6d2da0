"""Publishing a trained model: safetensors weights, a model card, and its registry entry."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from ser_pipeline.registry import REGISTRY_FILE, save_network


def publish(
    network: torch.nn.Module,
    *,
    model_id: str,
    architecture: str,
    models_dir: Path,
    entry: dict[str, Any],
    card_body: str,
) -> Path:
    """Write `<model_id>.safetensors` and `<model_id>.md` into `models_dir`, and upsert the entry
    into that folder's `registry.json` (sha256, card and file filled in here); a folder other
    than the project's `models/` gets a registry of its own, for `SER_REGISTRY`."""
    registry_file = models_dir / REGISTRY_FILE.name
    weights = models_dir / f"{model_id}.safetensors"
    sha256 = save_network(network, architecture, weights, {"model_id": model_id})
    card = models_dir / f"{model_id}.md"
    parameters = sum(p.numel() for p in network.parameters())
    card.write_text(
        f"# Model card: {model_id}\n\n{card_body.strip()}\n\n"
        f"## File\n`{weights.name}`: {weights.stat().st_size / 1e6:.2f} MB, {parameters:,} parameters, "
        f"sha256 `{sha256}`. Trained {datetime.now(UTC):%Y-%m-%d} with torch {torch.__version__} "
        f"on {platform.machine()} CPU.\n"
    )
    document = json.loads(registry_file.read_text()) if registry_file.is_file() else {"defaults": {}, "models": []}
    full_entry = {
        "id": model_id,
        "architecture": architecture,
        "weights": weights.name,
        "sha256": sha256,
        "card": card.name,
        **entry,
    }
    document["models"] = [m for m in document["models"] if m["id"] != model_id] + [full_entry]
    registry_file.write_text(json.dumps(document, indent=2) + "\n")
    return weights


def set_options(model_id: str, options: dict[str, Any], registry_file: Path = REGISTRY_FILE) -> None:
    """Merge `options` into a registered model's options (e.g. calibration temperatures)."""
    document = json.loads(registry_file.read_text())
    entries = [m for m in document["models"] if m["id"] == model_id]
    if not entries:
        raise KeyError(f"no model {model_id!r} in {registry_file}")
    entries[0]["options"] = {**entries[0].get("options", {}), **options}
    registry_file.write_text(json.dumps(document, indent=2) + "\n")
