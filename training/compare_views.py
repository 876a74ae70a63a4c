"""The paper's comparison at small scale: viewmaker views vs handcrafted ("expert") views vs both vs no pretraining.

For each method and seed it runs `training/pretrain.py` with the domain's recipe (`training/configs/<domain>.yaml`),
then `training/linear_eval.py` with the domain's evaluation recipe (`training/configs/eval_<domain>.yaml`) on held-out
data, and writes a table of the linear-evaluation top-1 accuracy (mean ± sample standard deviation over seeds) with
the time each run took. Runs whose results exist are reused, so an interrupted comparison picks up where it stopped.

    python tools/prepare_small_scale_data.py                       # the real data, from what installs offline
    python training/compare_views.py --domain basic_motions        # every method, seeds 0 1 2
    python training/compare_views.py --domain fashion_mnist --methods expert --seeds 0   # one cell

Methods (each a set of pretraining flags on top of the recipe):
    random            --max_steps 0: the untrained encoder (the floor)
    viewmaker         --view_mode viewmaker
    expert            --view_mode expert (the recipe's --expert_views)
    viewmaker+expert  --view_mode viewmaker+expert

Flags after `--` go to every pretraining run (e.g. `-- --num_train_epochs 2` for a quick look).
"""

import json
import statistics
import subprocess
import sys
import time
from argparse import RawDescriptionHelpFormatter
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"
METHODS = {
    "random": ["--max_steps", "0"],
    "viewmaker": ["--view_mode", "viewmaker"],
    "expert": ["--view_mode", "expert"],
    "viewmaker+expert": ["--view_mode", "viewmaker+expert"],
}


@dataclass
class ComparisonArguments:
    """Which comparison to run, and where."""

    _argument_group_name = "comparison"

    domain: str = field(
        metadata={
            "help": "the recipes <config_dir>/<domain>.yaml and eval_<domain>.yaml: fashion_mnist, asterisk, "
            "basic_motions"
        },
    )
    config_dir: str = field(default=str(CONFIGS), metadata={"help": "where the domain's two recipes are"})
    methods: list[str] = field(default_factory=lambda: list(METHODS), metadata={"choices": list(METHODS)})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "pretraining and evaluation seeds"})
    output_dir: str = field(default="outputs/comparison", metadata={"help": "runs go to <output_dir>/<domain>/..."})
    overwrite: bool = field(default=False, metadata={"help": "rerun runs whose results exist"})


def parse_args(argv: list[str] | None = None) -> tuple[ComparisonArguments, list[str]]:
    """The comparison's arguments, and the flags after `--` (for every pretraining run)."""
    parser = HfArgumentParser(ComparisonArguments, description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    (args,) = parser.parse_args_into_dataclasses(
        argv[: argv.index("--")] if "--" in argv else argv, look_for_args_file=False
    )
    recipes = [Path(args.config_dir) / f"{prefix}{args.domain}.yaml" for prefix in ("", "eval_")]
    missing = [str(recipe) for recipe in recipes if not recipe.is_file()]
    if missing:
        parser.error(f"--domain {args.domain}: no recipe {' or '.join(missing)}")
    return args, extra


def run(command: list[str], log: Path) -> float:
    """Run `command` with its output in `log`; the seconds it took. A failure raises, naming the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as handle:
        handle.write(" ".join(command) + "\n")
        handle.flush()
        completed = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:3])} failed (exit {completed.returncode}); see {log}")
    return time.perf_counter() - started


def run_cell(
    domain: str, method: str, seed: int, root: Path, config_dir: Path, extra: list[str], overwrite: bool
) -> dict:
    """Pretrain and evaluate one (method, seed); returns its record (also saved as `record.json`)."""
    folder = root / method.replace("+", "_") / f"seed{seed}"
    record_path = folder / "record.json"
    if record_path.is_file() and not overwrite:
        return json.loads(record_path.read_text())
    pretrain = [
        sys.executable,
        "training/pretrain.py",
        "--config",
        str(config_dir / f"{domain}.yaml"),
        *METHODS[method],
        "--seed",
        str(seed),
        "--output_dir",
        str(folder / "pretrain"),
        # A cell without its record.json is unfinished: it is redone from the start.
        "--overwrite_output_dir",
        "true",
        *extra,
    ]
    evaluate = [
        sys.executable,
        "training/linear_eval.py",
        "--config",
        str(config_dir / f"eval_{domain}.yaml"),
        "--model_name_or_path",
        str(folder / "pretrain"),
        "--seed",
        str(seed),
        "--output_dir",
        str(folder / "linear_eval"),
        "--overwrite_output_dir",
        "true",
    ]
    pretrain_seconds = run(pretrain, folder / "pretrain.log")
    eval_seconds = run(evaluate, folder / "linear_eval.log")
    results = json.loads((folder / "linear_eval" / "eval_results.json").read_text())
    trained = json.loads((folder / "pretrain" / "train_results.json").read_text())
    record = {
        "domain": domain,
        "method": method,
        "seed": seed,
        "top1": results["top1_accuracy"],
        "macro_f1": results.get("macro_f1"),
        "pretrain_knn_accuracy": trained.get("knn_accuracy"),
        "pretrain_steps": trained["completed_steps"],
        "pretrain_seconds": round(pretrain_seconds, 1),
        "linear_eval_seconds": round(eval_seconds, 1),
        "pretrain_command": " ".join(pretrain[1:]),
        "linear_eval_command": " ".join(evaluate[1:]),
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def table(records: list[dict]) -> str:
    """Markdown: one row per method, in the order run."""
    lines = [
        "| method | linear top-1 (%) | seeds | pretraining steps | minutes per seed (pretrain + eval) |",
        "|---|---|---|---|---|",
    ]
    for method in dict.fromkeys(r["method"] for r in records):
        rows = [r for r in records if r["method"] == method]
        minutes = statistics.mean(r["pretrain_seconds"] + r["linear_eval_seconds"] for r in rows) / 60
        lines.append(
            f"| {method} | {mean_std([r['top1'] for r in rows])} | {', '.join(str(r['seed']) for r in rows)} "
            f"| {rows[0]['pretrain_steps']} | {minutes:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args, extra = parse_args(argv)
    # Absolute, since the runs execute in the repository root (where the recipes' data paths are relative to).
    root = Path(args.output_dir).resolve() / args.domain
    started = time.perf_counter()
    records = []
    for method in args.methods:
        for seed in args.seeds:
            record = run_cell(args.domain, method, seed, root, Path(args.config_dir).resolve(), extra, args.overwrite)
            print(
                f"{args.domain} {method} seed {seed}: top-1 {record['top1']:.4f} "
                f"({record['pretrain_seconds']:.0f} s + {record['linear_eval_seconds']:.0f} s)",
                flush=True,
            )
            records.append(record)
    summary = {
        "domain": args.domain,
        "records": records,
        "table": table(records),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "run_seconds": round(sum(r["pretrain_seconds"] + r["linear_eval_seconds"] for r in records), 1),
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(summary["table"])
    print(
        f"total run time {summary['run_seconds'] / 60:.1f} min (this invocation: {summary['wall_seconds'] / 60:.1f} min)"
    )


if __name__ == "__main__":
    main()
