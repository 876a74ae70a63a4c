"""Where the models of a run are, on disk and on the Hub.

A run folder written by `training/pretrain.py` keeps each model in its own folder:

    run/encoder/      config.json, model.safetensors, preprocessor_config.json, code
    run/viewmaker/    the same for the viewmaker (absent for a run on handcrafted views)
    run/training_args.json, train_results.json, views.png, README.md

A published repository puts the encoder, the model people use for features, at its root, so that
`pipeline("image-feature-extraction", model=repo_id)`, `AutoModel.from_pretrained(repo_id)` and the Hub's widget find
it without a `subfolder`, and keeps the viewmaker in `viewmaker/`. A linear-evaluation output folder is already in
that layout: the probe (encoder + head) at its root. Everything that reads a run accepts both layouts.
"""

from __future__ import annotations

from pathlib import Path

#: {part: its folder in a published repository ("" is the root)}.
PUBLISHED_FOLDERS = {"encoder": "", "viewmaker": "viewmaker"}


def model_folders(folder: str | Path) -> dict[str, Path]:
    """{part ("encoder", "viewmaker"): local folder holding it} for a run folder, a published repository's snapshot
    or a linear-evaluation output (whose probe counts as the encoder). Parts that are absent are left out."""
    folder = Path(folder)
    found = {}
    if (folder / "encoder").is_dir():
        found["encoder"] = folder / "encoder"
    elif (folder / "config.json").is_file():
        found["encoder"] = folder
    if (folder / "viewmaker").is_dir():
        found["viewmaker"] = folder / "viewmaker"
    return found


__all__ = ["PUBLISHED_FOLDERS", "model_folders"]
