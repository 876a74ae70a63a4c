"""Command-line flags with YAML recipes as defaults, as the training scripts take them."""

import argparse
from pathlib import Path

import yaml


def parse_args_with_recipe(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse `argv` with `parser`, taking the keys of the `--config` YAML recipe (if any) as the defaults, so that
    command-line flags override the recipe. A recipe key that is no flag of `parser` is an error naming it."""
    known, _ = parser.parse_known_args(argv)
    if known.config:
        recipe = yaml.safe_load(Path(known.config).read_text()) or {}
        unknown = sorted(set(recipe) - {action.dest for action in parser._actions})
        if unknown:
            parser.error(f"unknown keys in {known.config}: {unknown}")
        parser.set_defaults(**recipe)
    return parser.parse_args(argv)
