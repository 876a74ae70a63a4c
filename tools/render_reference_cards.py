"""Render the model cards of the reference runs from their recorded results: `model_cards/*.md`.

    python tools/render_reference_cards.py          # rewrite the cards
    python tools/render_reference_cards.py --check  # exit 1 if a card differs from what the code renders now

Each folder `model_cards/reference_runs/<name>/` holds what a run of docs/results.md recorded, without its weights:
`training_args.json`, `train_results.json`, `eval_results.json` and the models' `config.json` /
`preprocessor_config.json` (enough to count parameters and FLOPs), and in `eval/` the linear probe's. It renders as
`<name>.md` (the pretraining run, with its linear evaluation) and `<name>_probe.md` (the probe), as they would be
published under `NAMESPACE/<name>` and `NAMESPACE/<name>-probe`.
"""

import argparse
import sys
from pathlib import Path

from hf_viewmaker.hub import build_model_card

MODEL_CARDS = Path(__file__).resolve().parents[1] / "model_cards"
# What the reference runs read (tools/prepare_small_scale_data.py lays it out from what installs offline).
DATASETS = {
    "fashion_mnist": "Fashion-MNIST (Debian's dataset-fashion-mnist)",
    "asterisk": "Asterisk voice prompts, 5 voices (Debian's asterisk-core-sounds-*-wav)",
    "basic_motions": "BasicMotions (UEA archive, from the aeon wheel)",
}


def render(name: str) -> dict[str, str]:
    """{card file name: text} of the reference run `name`."""
    record = MODEL_CARDS / "reference_runs" / name
    repo_id = f"NAMESPACE/{name.replace('_', '-')}"
    dataset = DATASETS[name.split("_viewmaker")[0]]
    cards = {f"{name}.md": str(build_model_card(record, repo_id=repo_id, dataset_name=dataset))}
    if (record / "eval").is_dir():
        probe = build_model_card(record / "eval", repo_id=f"{repo_id}-probe", base_model=repo_id, dataset_name=dataset)
        cards[f"{name}_probe.md"] = str(probe)
    return cards


def reference_runs() -> list[str]:
    return sorted(path.name for path in (MODEL_CARDS / "reference_runs").iterdir() if path.is_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name in reference_runs():
        for file, text in render(name).items():
            path = MODEL_CARDS / file
            if args.check:
                if not path.is_file() or path.read_text() != text:
                    stale.append(file)
            else:
                path.write_text(text)
                print(path)
    if stale:
        print(f"stale model cards (run python tools/render_reference_cards.py): {stale}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
