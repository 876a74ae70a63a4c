"""Draw a pretraining run's viewmaker views of held-out examples: the pictures of docs/results.md.

    python tools/draw_views.py outputs/comparison/basic_motions/viewmaker/seed0/pretrain \
        --examples 2 --output docs/results/basic_motions_views.png

The run's data pipeline is rebuilt from the arguments it saved (`training_args.json`, read with
`PretrainingRun.load`; run this from the directory the run was started in,
since its data paths are relative to it; fitted statistics are fitted again, the same way on the same files), and its
saved viewmaker perturbs the first `--examples` validation examples, as `training/pretrain.py` draws `views.png`
(`DataPipeline.view_grid`). The picture has one column per example and three rows: the clean input, the view and the
perturbation amplified to the full grey range (mid-grey is zero); sensor spectrograms show their first channels side by
side.
"""

import argparse
from pathlib import Path

from hf_viewmaker import ViewmakerModel
from hf_viewmaker.arguments import PretrainingRun
from hf_viewmaker.data import build_pipeline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a pretraining output directory (viewmaker/, training_args.json)")
    parser.add_argument("--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--examples", type=int, default=4, help="validation examples to draw, from the first")
    parser.add_argument("--scale", type=int, default=4, help="pixels per input pixel")
    parser.add_argument("--seed", type=int, default=0, help="seed of the viewmaker's noise")
    args = parser.parse_args(argv)
    for needed in ("training_args.json", "viewmaker/config.json"):
        if not (args.run / needed).is_file():
            parser.error(f"{args.run} has no {needed}: not a pretraining run with a viewmaker")
    if args.examples < 1:
        parser.error(f"--examples must be at least 1, got {args.examples}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = PretrainingRun.load(args.run)
    pipeline = build_pipeline(
        run.data, run.inputs, views=run.views, seed=run.training.seed, viewmaker_input=run.model.viewmaker_input
    )
    viewmaker = ViewmakerModel.from_pretrained(args.run / "viewmaker").eval()
    grid = pipeline.view_grid(viewmaker, count=args.examples, seed=args.seed, scale=args.scale)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.output)
    print(f"{args.output}: {grid.width}x{grid.height} px")


if __name__ == "__main__":
    main()
