"""The `hf-viewmaker` command.

    hf-viewmaker push OUTPUT_DIR --hub_model_id NAMESPACE/NAME [--private] [--revision REV] [--commit_message MSG]
    hf-viewmaker card OUTPUT_DIR [--hub_model_id NAMESPACE/NAME] [--eval_results FILE ...] [--base_model ID]
    python -m hf_viewmaker.cli push ...

`push` publishes a pretraining run (`training/pretrain.py --output_dir`), a linear probe (`training/linear_eval.py
--output_dir`) or a converted original checkpoint to the Hub in one commit, in the published layout (the encoder or
probe at the root, the viewmaker in `viewmaker/`), its model card and the evaluation results it reports included;
see `hf_viewmaker.hub.push_run_to_hub`. `card` writes the model card (`OUTPUT_DIR/README.md`) without pushing. The token comes from `HF_TOKEN` or `hf auth login` (there is deliberately no
token flag: a token on the command line ends up in shell histories and process lists). `HF_ENDPOINT` selects another
Hub-compatible server.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

OUTPUT_DIR_HELP = (
    "the --output_dir of training/pretrain.py or training/linear_eval.py, a converted checkpoint, or a folder in "
    "the published layout"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-viewmaker", description="Viewmaker Networks tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    push = commands.add_parser(
        "push",
        help="publish a training run to the Hugging Face Hub",
        description="Upload the encoder (to the repository's root), viewmaker/, views.png, README.md and the "
        "run's JSON files to a model repository in one commit (never checkpoints/). Token: HF_TOKEN or "
        "`hf auth login`.",
    )
    push.add_argument("output_dir", metavar="OUTPUT_DIR", help=OUTPUT_DIR_HELP)
    push.add_argument("--hub_model_id", required=True, metavar="NAMESPACE/NAME", help="the model repository")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument("--revision", default=None, metavar="REV", help="branch to commit to (created if needed)")
    push.add_argument("--commit_message", default=None, help="summary of the commit")
    push.add_argument(
        "--eval_results",
        nargs="+",
        default=None,
        metavar="FILE",
        help="eval_results.json files of training/linear_eval.py to report in the model card "
        "(default: OUTPUT_DIR/eval_results.json if present)",
    )
    push.add_argument(
        "--no_model_card",
        action="store_true",
        help="upload OUTPUT_DIR/README.md as it is instead of writing the model card from the run's results",
    )
    card = commands.add_parser(
        "card",
        help="write a run's model card (OUTPUT_DIR/README.md) without pushing",
        description="Render the model card of a training run from its results, as `push` would publish it.",
    )
    card.add_argument("output_dir", metavar="OUTPUT_DIR", help=OUTPUT_DIR_HELP)
    card.add_argument(
        "--hub_model_id",
        default=None,
        metavar="NAMESPACE/NAME",
        help="the repository the usage snippet loads from (default: the local folders)",
    )
    card.add_argument("--eval_results", nargs="+", default=None, metavar="FILE", help="as for `push`")
    for command in (push, card):
        command.add_argument(
            "--dataset_name",
            default=None,
            help="what the card calls the data (default: its Hub id, or the local path the run read)",
        )
        command.add_argument(
            "--base_model",
            default=None,
            metavar="NAMESPACE/NAME",
            help="for a linear probe: the Hub id of the pretrained run it probes (default: the encoder it was "
            "evaluated on, if that was a Hub id)",
        )
    return parser


def _evaluation_files(paths: list[str] | None) -> dict[str, Path]:
    """The `--eval_results` files the card reports, as they are uploaded: one as `eval_results.json`, several under
    `eval_results/<the evaluation's folder name>.json`."""
    if not paths:
        return {}
    if len(paths) == 1:
        return {"eval_results.json": Path(paths[0])}
    named = {f"eval_results/{Path(path).resolve().parent.name}.json": Path(path) for path in paths}
    if len(named) != len(paths):
        raise ValueError(f"--eval_results {paths}: two files in folders of one name would overwrite each other")
    return named


def _card_arguments(args: argparse.Namespace) -> dict:
    """What `push` and `card` pass to `build_model_card`."""
    return {
        "repo_id": args.hub_model_id,
        "eval_results": args.eval_results,
        "base_model": args.base_model,
        "dataset_name": args.dataset_name,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:  # run as a command: show our progress, not every HTTP request
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger("hf_viewmaker").setLevel(logging.INFO)

    from .hub import (
        HubAuthenticationError,
        HubPushError,
        build_model_card,
        check_repo_id,
        push_run_to_hub,
        write_model_card,
    )

    if args.command == "push":
        kwargs = {} if args.commit_message is None else {"commit_message": args.commit_message}
        try:
            check_repo_id(args.hub_model_id)
            card = None
            if not args.no_model_card:
                card = build_model_card(args.output_dir, **_card_arguments(args))
            url = push_run_to_hub(
                args.output_dir,
                args.hub_model_id,
                private=args.private,
                revision=args.revision,
                model_card=None if card is None else str(card),
                extra_files=_evaluation_files(args.eval_results),
                **kwargs,
            )
            if card is not None:  # the local card changes only once the Hub has the same one
                card.save(Path(args.output_dir) / "README.md")
        except (OSError, ValueError, HubAuthenticationError, HubPushError) as error:
            print(f"hf-viewmaker push: error: {error}", file=sys.stderr)
            return 1
        print(url)
    if args.command == "card":
        try:
            path = write_model_card(args.output_dir, **_card_arguments(args))
        except (OSError, ValueError) as error:
            print(f"hf-viewmaker card: error: {error}", file=sys.stderr)
            return 1
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
