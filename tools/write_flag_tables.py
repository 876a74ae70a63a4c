"""Write the README's flag tables from the scripts' argument groups, so that the two cannot drift.

    python tools/write_flag_tables.py           # rewrite the tables in README.md
    python tools/write_flag_tables.py --check   # exit 1 if README.md differs from what the parsers say

Each script's tables stand between `<!-- flags:NAME -->` and `<!-- /flags:NAME -->` in README.md: one table per
argument group (`hf_viewmaker.arguments`), each row the flag, its default and its help, in declaration order.
"""

import argparse
import importlib.util
import re
import sys
from pathlib import Path

from hf_viewmaker.arguments import flag_table

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SCRIPTS = ("pretrain", "linear_eval", "benchmark")


def _script(name: str):
    sys.path.insert(0, str(ROOT / "training"))  # benchmark.py imports pretrain.py beside it
    try:
        spec = importlib.util.spec_from_file_location(f"_flags_{name}", ROOT / "training" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "training"))
    return module


def tables(name: str) -> str:
    """The markdown of every flag of `training/<name>.py`: `--config`, then one table per argument group (for the
    benchmark, only its own group: the rest are pretraining's)."""
    parser = _script(name).build_parser()
    groups = parser.dataclass_types
    if name == "benchmark":
        return flag_table(groups[-1])
    (config,) = [action for action in parser._actions if action.dest == "config"]
    recipe = f"| recipe flag | default | meaning |\n|---|---|---|\n| `--config` |  | {config.help} |"
    return "\n\n".join([recipe, *(flag_table(group) for group in groups)])


def _marked(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- flags:{name} -->\n)(.*?)(\n<!-- /flags:{name} -->)", re.DOTALL)


def render(readme: str) -> str:
    """`readme` with each script's tables rewritten."""
    for name in SCRIPTS:
        pattern = _marked(name)
        if not pattern.search(readme):
            raise ValueError(f"README.md has no <!-- flags:{name} --> ... <!-- /flags:{name} --> section")
        rendered = tables(name)
        readme = pattern.sub(lambda match, rendered=rendered: match.group(1) + rendered + match.group(3), readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md's flag tables differ from the parsers: run python tools/write_flag_tables.py")
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
