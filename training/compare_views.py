"""The paper's comparison at small scale: viewmaker views vs handcrafted ("expert") views vs both vs no pretraining.

For each method and seed it runs `training/pretrain.py` with the domain's recipe (`training/configs/<domain>.yaml`),
then `training/linear_eval.py` with the domain's evaluation recipe (`training/configs/eval_<domain>.yaml`) on held-out
data, and writes a table of the linear-evaluation top-1 accuracy (mean ± sample standard deviation over seeds) with
the time each run took. `--transfer_tasks` adds linear evaluations on other data (`eval_<domain>_<task>.yaml`).

An interrupted comparison picks up where it stopped: finished runs are reused, an unfinished pretraining resumes from
its last checkpoint (saved every epoch; the resume is exact) and a missing evaluation is redone.

    python tools/prepare_small_scale_data.py                       # the real data, from what installs offline
    python training/compare_views.py --domain basic_motions        # every method, seeds 0 1 2
    python training/compare_views.py --domain fashion_mnist --methods expert --seeds 0   # one cell

The budget chosen without labels: `--distortion_budgets 0.02 0.05 0.1 0.2` runs every method that uses a viewmaker at
each budget, and the summary picks, per method, the budget whose encoders have the highest mean RankMe (the effective
rank of their features on the held-out inputs, measured by pretraining: no labels), beside the budget whose linear
accuracy is best (docs/method.md §3.7).

Methods (each a set of pretraining flags on top of the recipe; the first four by default):
    random                --max_steps 0: the untrained encoder (the floor)
    viewmaker             --view_mode viewmaker
    expert                --view_mode expert (the recipe's --expert_views)
    viewmaker+expert      --view_mode viewmaker+expert
    divmaker              --view_mode viewmaker --viewmaker_objective divmaker (non-adversarial)
    viewmaker_raw         --view_mode viewmaker --viewmaker_input raw (sensors: a 1-D viewmaker of the raw signal)
    expert_imu            --view_mode expert --expert_views imu (sensors: rotation, scaling, jitter + masking)
    viewmaker+expert_imu  --view_mode viewmaker+expert --expert_views imu

Flags after `--` go to every pretraining run (e.g. `-- --num_train_epochs 2` for a quick look).
"""

import itertools
import json
import shutil
import statistics
import subprocess
import sys
import time
from argparse import RawDescriptionHelpFormatter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from hf_viewmaker.arguments import ModelArguments

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"
METHODS = {
    "random": ["--max_steps", "0"],
    "viewmaker": ["--view_mode", "viewmaker"],
    "expert": ["--view_mode", "expert"],
    "viewmaker+expert": ["--view_mode", "viewmaker+expert"],
    # Beyond the paper's four (not run unless named): Divmaker's non-adversarial viewmaker, a viewmaker of the raw
    # sensor signal, and the stronger handcrafted sensor views (docs/method.md §3.6, §4.6).
    "divmaker": ["--view_mode", "viewmaker", "--viewmaker_objective", "divmaker"],
    "viewmaker_raw": ["--view_mode", "viewmaker", "--viewmaker_input", "raw"],
    "expert_imu": ["--view_mode", "expert", "--expert_views", "imu"],
    "viewmaker+expert_imu": ["--view_mode", "viewmaker+expert", "--expert_views", "imu"],
}
PAPER_METHODS = ["random", "viewmaker", "expert", "viewmaker+expert"]
# Records of another format are rebuilt from their cell's files (2: RankMe, the final loss, transfer and corruptions;
# 3: the accuracy under each corruption).
RECORD_FORMAT = 3


@dataclass
class ComparisonArguments:
    """Which comparison to run, and where."""

    _argument_group_name = "comparison"

    domain: str = field(
        metadata={
            "help": "the recipes <config_dir>/<domain>.yaml and eval_<domain>.yaml: fashion_mnist, asterisk, "
            "basic_motions, watch"
        },
    )
    config_dir: str = field(default=str(CONFIGS), metadata={"help": "where the domain's recipes are"})
    methods: list[str] = field(
        default_factory=lambda: list(PAPER_METHODS),
        metadata={"choices": list(METHODS), "help": f"default: the paper's four, {' '.join(PAPER_METHODS)}"},
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "pretraining and evaluation seeds"})
    transfer_tasks: list[str] = field(
        default_factory=list,
        metadata={"help": "also evaluate every run with <config_dir>/eval_<domain>_<task>.yaml, for each task"},
    )
    distortion_budgets: list[float] = field(
        default_factory=list,
        metadata={
            "help": "run the methods that use a viewmaker at each of these budgets (the recipe's own included or "
            "not) and choose one by RankMe; default: the recipe's budget only"
        },
    )
    corruptions_dir: str | None = field(
        default=None,
        metadata={
            "help": "also evaluate each run's probe on this corrupted test set (linear_eval.py --cifar10c_dir: "
            "CIFAR-10-C, or Fashion-MNIST-C from tools/make_corrupted_images.py)"
        },
    )
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
    recipes += [Path(args.config_dir) / f"eval_{args.domain}_{task}.yaml" for task in args.transfer_tasks]
    missing = [str(recipe) for recipe in recipes if not recipe.is_file()]
    if missing:
        parser.error(f"--domain {args.domain}: no recipe {' or '.join(missing)}")
    if any(not 0 < budget < float("inf") for budget in args.distortion_budgets):
        parser.error(f"--distortion_budgets must be positive finite numbers, got {args.distortion_budgets}")
    if "--distortion_budget" in extra and args.distortion_budgets:
        parser.error("give the budgets with --distortion_budgets, not also `-- --distortion_budget`")
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


def uses_viewmaker(method: str) -> bool:
    """Whether `method` trains a viewmaker: its `--view_mode` names one (the random floor sets none)."""
    flags = METHODS[method]
    return "--view_mode" in flags and "viewmaker" in flags[flags.index("--view_mode") + 1]


def cell_folder(root: Path, method: str, seed: int, budget: float | None) -> Path:
    """`<method>/seed<k>`, or `<method>_budget<b>/seed<k>` for a budget of the sweep."""
    name = method.replace("+", "_") + ("" if budget is None else f"_budget{budget:g}")
    return root / name / f"seed{seed}"


def linear_eval(config: Path, pretrained: Path, seed: int, output_dir: Path) -> list[str]:
    return [
        sys.executable,
        "training/linear_eval.py",
        "--config",
        str(config),
        "--model_name_or_path",
        str(pretrained),
        "--seed",
        str(seed),
        "--output_dir",
        str(output_dir),
        "--overwrite_output_dir",
        "true",
    ]


def evaluated(folder: Path, name: str, command: list[str], rerun: bool) -> tuple[dict, float]:
    """The results of the evaluation `command` writes to `folder / name`, running it if `rerun` or they are missing."""
    results_path = folder / name / "eval_results.json"
    seconds = 0.0
    if rerun or not results_path.is_file():
        seconds = run(command, folder / f"{name}.log")
    return json.loads(results_path.read_text()), seconds


def run_cell(
    domain: str,
    method: str,
    seed: int,
    root: Path,
    config_dir: Path,
    extra: list[str],
    overwrite: bool,
    budget: float | None = None,
    transfer_tasks: tuple[str, ...] = (),
    corruptions_dir: Path | None = None,
) -> dict:
    """Pretrain and evaluate one (method, seed[, budget]); returns its record (also saved as `record.json`).

    What an interrupted cell finished is kept: a pretraining with checkpoints resumes from the newest (exactly), a
    finished one is not redone, nor is an evaluation whose results exist."""
    folder = cell_folder(root, method, seed, budget)
    record_path = folder / "record.json"
    earlier = {}
    if record_path.is_file() and not overwrite:
        earlier = json.loads(record_path.read_text())
        if earlier.get("record_format") == RECORD_FORMAT:
            return earlier
        # Written by an earlier version of this driver: rebuilt below from the cell's files, nothing rerun, with the
        # times it measured.
    if overwrite and folder.exists():
        shutil.rmtree(folder)
    pretrained = folder / "pretrain"
    pretrain = [
        sys.executable,
        "training/pretrain.py",
        "--config",
        str(config_dir / f"{domain}.yaml"),
        *METHODS[method],
        *(["--distortion_budget", f"{budget:g}"] if budget is not None else []),
        "--seed",
        str(seed),
        "--output_dir",
        str(pretrained),
        "--checkpointing_steps",
        "epoch",
        # From the newest checkpoint of an interrupted pretraining, else from the start (replacing what it left).
        "--resume_from_checkpoint",
        "latest",
        "--overwrite_output_dir",
        "true",
        *extra,
    ]
    # Evaluations of an encoder whose pretraining is (re)run now are redone with it.
    pretraining = not (pretrained / "train_results.json").is_file()
    pretrain_seconds = run(pretrain, folder / "pretrain.log") if pretraining else 0.0
    trained = json.loads((pretrained / "train_results.json").read_text())
    evaluate = linear_eval(config_dir / f"eval_{domain}.yaml", pretrained, seed, folder / "linear_eval")
    if corruptions_dir is not None:
        evaluate += ["--cifar10c_dir", str(corruptions_dir)]
    results, eval_seconds = evaluated(folder, "linear_eval", evaluate, pretraining)
    if corruptions_dir is not None and "cifar10c" not in results:  # evaluated before the corruptions were asked for
        raise RuntimeError(f"{folder / 'linear_eval'} has no corruption results: delete it to evaluate again")
    transfer = {}
    for task in transfer_tasks:
        command = linear_eval(config_dir / f"eval_{domain}_{task}.yaml", pretrained, seed, folder / f"transfer_{task}")
        task_results, seconds = evaluated(folder, f"transfer_{task}", command, pretraining)
        eval_seconds += seconds
        transfer[task] = {"top1": task_results["top1_accuracy"], "macro_f1": task_results.get("macro_f1")}
    history = trained["encoder_loss_history"]
    record = {
        "record_format": RECORD_FORMAT,
        "domain": domain,
        "method": method,
        "seed": seed,
        "distortion_budget": budget,
        "top1": results["top1_accuracy"],
        "macro_f1": results.get("macro_f1"),
        "transfer": transfer,
        "corruption_top1": results["cifar10c"]["mean_accuracy"] if "cifar10c" in results else None,
        "corruptions": results["cifar10c"]["per_corruption"] if "cifar10c" in results else None,
        "pretrain_knn_accuracy": trained.get("knn_accuracy"),
        "rankme": trained.get("rankme"),
        "rankme_max": trained.get("rankme_max"),
        # The mean of the last logged losses (each already a mean over its logging window).
        "final_loss": statistics.mean(loss for _, loss in history[-2:]) if history else None,
        "pretrain_steps": trained["completed_steps"],
        # What this invocation ran (else what an earlier record measured): a resumed cell's earlier part is in its
        # logs, not here.
        "pretrain_seconds": round(pretrain_seconds or earlier.get("pretrain_seconds", 0.0), 1),
        "linear_eval_seconds": round(eval_seconds or earlier.get("linear_eval_seconds", 0.0), 1),
        "pretrain_command": " ".join(pretrain[1:]),
        "linear_eval_command": " ".join(evaluate[1:]),
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def mean_std(values: list[float], scale: float = 100, digits: int = 1) -> str:
    """`mean ± sample std` of `values` times `scale` (the mean alone for one value)."""
    if len(values) == 1:
        return f"{scale * values[0]:.{digits}f}"
    return f"{scale * statistics.mean(values):.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def sign_flip_p_value(differences: list[float]) -> float:
    """Two-sided p-value of the exact paired permutation test: the share of the 2^n sign flips of the per-seed
    differences whose mean is at least as far from 0 as the observed one. Assumes nothing about their distribution;
    with n seeds it cannot go below 2 / 2^n (1/16 for 5 seeds)."""
    observed = abs(statistics.mean(differences)) - 1e-12
    flips = list(itertools.product((1, -1), repeat=len(differences)))
    extreme = sum(abs(statistics.mean(s * d for s, d in zip(signs, differences))) >= observed for signs in flips)
    return extreme / len(flips)


def _groups(records: list[dict]) -> dict[tuple[str, float], list[dict]]:
    """Records by (method, budget), in the order run."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for record in records:
        groups.setdefault((record["method"], record.get("distortion_budget")), []).append(record)
    return groups


def _metric(record: dict, metric: str) -> float | None:
    """A record's `metric`: a key (`top1`, `corruption_top1`) or `transfer:<task>` (that task's top-1)."""
    if metric.startswith("transfer:"):
        return record.get("transfer", {}).get(metric.removeprefix("transfer:"), {}).get("top1")
    return record.get(metric)


def _mean_of(rows: list[dict], metric: str, scale: float = 1, digits: int = 2) -> str:
    """`mean ± std` of `metric` (as `_metric` reads it) over `rows`, or "–" where a row lacks it."""
    values = [value for r in rows if (value := _metric(r, metric)) is not None]
    return mean_std(values, scale, digits) if len(values) == len(rows) else "–"


def _budget_text(method: str, budget: float | None) -> str:
    """How a table shows a (method, budget) group's budget: only methods that train a viewmaker have one."""
    return "–" if budget is None or not uses_viewmaker(method) else f"{budget:g}"


def table(records: list[dict]) -> str:
    """Markdown: one row per method (and budget), in the order run."""
    tasks = list(dict.fromkeys(task for r in records for task in r.get("transfer", {})))
    corrupted = any(r.get("corruption_top1") is not None for r in records)
    header = ["method", "budget", "linear top-1 (%)", *(f"{task} top-1 (%)" for task in tasks)]
    header += ["mean corruption top-1 (%)"] * corrupted
    header += ["RankMe", "final loss", "seeds", "pretraining steps", "minutes per seed (pretrain + eval)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (method, budget), rows in _groups(records).items():
        transfer = [_mean_of(rows, f"transfer:{task}", scale=100, digits=1) for task in tasks]
        minutes = statistics.mean(r["pretrain_seconds"] + r["linear_eval_seconds"] for r in rows) / 60
        cells = [
            method,
            _budget_text(method, budget),
            mean_std([r["top1"] for r in rows]),
            *transfer,
            *[_mean_of(rows, "corruption_top1", scale=100, digits=1)] * corrupted,
            _mean_of(rows, "rankme", digits=1),
            _mean_of(rows, "final_loss", digits=3),
            ", ".join(str(r["seed"]) for r in rows),
            str(rows[0]["pretrain_steps"]),
            f"{minutes:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(records: list[dict], metric: str = "top1") -> str:
    """Markdown: every two trained methods compared seed by seed on `metric` (linear top-1, `corruption_top1`: the
    mean corruption accuracy, or `transfer:<task>`: a transfer task's top-1); give one budget per method."""
    groups = {
        key: rows
        for key, rows in _groups(records).items()
        if key[0] != "random" and all(_metric(r, metric) is not None for r in rows)
    }
    lines = [
        "| method A | method B | A − B (points, mean ± std over seeds) | A better on | sign-flip p |",
        "|---|---|---|---|---|",
    ]
    for (key_a, rows_a), (key_b, rows_b) in itertools.combinations(groups.items(), 2):
        by_seed = {r["seed"]: _metric(r, metric) for r in rows_b}
        differences = [_metric(r, metric) - by_seed[r["seed"]] for r in rows_a if r["seed"] in by_seed]
        if len(differences) < 2:
            continue
        lines.append(
            f"| {key_a[0]} | {key_b[0]} | {mean_std(differences)} | {sum(d > 0 for d in differences)} of "
            f"{len(differences)} seeds | {sign_flip_p_value(differences):.3f} |"
        )
    return "\n".join(lines)


def corruption_table(records: list[dict]) -> str:
    """Markdown: the probe's top-1 under each corruption (mean over its severities), one column per method (and
    budget) whose runs were all evaluated on the corruptions; empty if none was."""
    groups = {
        key: rows for key, rows in _groups(records).items() if all(r.get("corruptions") is not None for r in rows)
    }
    if not groups:
        return ""
    names = list(dict.fromkeys(name for rows in groups.values() for r in rows for name in r["corruptions"]))
    columns = [
        method if (text := _budget_text(method, budget)) == "–" else f"{method} ({text})" for method, budget in groups
    ]
    lines = ["| corruption | " + " | ".join(f"{c} top-1 (%)" for c in columns) + " |", "|" + "---|" * (len(groups) + 1)]
    for name in names:
        cells = [mean_std([r["corruptions"][name] for r in rows]) for rows in groups.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def budget_choice(records: list[dict]) -> list[dict]:
    """Per method run at several budgets: the budget with the highest mean RankMe (chosen without labels) and the one
    with the best mean linear top-1, with the accuracy at each."""
    choices = []
    for method in dict.fromkeys(r["method"] for r in records):
        means = {
            budget: (statistics.mean(r["rankme"] for r in rows), statistics.mean(r["top1"] for r in rows))
            for (m, budget), rows in _groups(records).items()
            if m == method and all(r.get("rankme") is not None for r in rows)
        }
        if len(means) < 2:
            continue
        chosen = max(means, key=lambda b: means[b][0])
        best = max(means, key=lambda b: means[b][1])
        choices.append(
            {
                "method": method,
                "budgets": {f"{b:g}": {"rankme": r, "top1": a} for b, (r, a) in sorted(means.items())},
                "chosen_by_rankme": chosen,
                "top1_at_chosen": means[chosen][1],
                "best_by_top1": best,
                "best_top1": means[best][1],
                "points_lost_by_choosing_without_labels": 100 * (means[best][1] - means[chosen][1]),
            }
        )
    return choices


def main(argv: list[str] | None = None) -> None:
    args, extra = parse_args(argv)
    # Absolute, since the runs execute in the repository root (where the recipes' data paths are relative to).
    root = Path(args.output_dir).resolve() / args.domain
    config_dir = Path(args.config_dir).resolve()
    recipe = yaml.safe_load((config_dir / f"{args.domain}.yaml").read_text()) or {}
    recipe_budget = float(recipe.get("distortion_budget", ModelArguments.distortion_budget))
    started = time.perf_counter()
    records = []
    for method in args.methods:
        budgets = args.distortion_budgets if args.distortion_budgets and uses_viewmaker(method) else [recipe_budget]
        for budget in budgets:
            for seed in args.seeds:
                # The recipe's own budget is the plain cell, shared with a comparison run without the sweep.
                sweep_budget = None if budget == recipe_budget else budget
                record = run_cell(
                    args.domain,
                    method,
                    seed,
                    root,
                    config_dir,
                    extra,
                    args.overwrite,
                    sweep_budget,
                    tuple(args.transfer_tasks),
                    Path(args.corruptions_dir).resolve() if args.corruptions_dir else None,
                )
                record = {**record, "distortion_budget": budget}
                print(
                    f"{args.domain} {method} budget {budget:g} seed {seed}: top-1 {record['top1']:.4f} "
                    f"({record['pretrain_seconds']:.0f} s + {record['linear_eval_seconds']:.0f} s)",
                    flush=True,
                )
                records.append(record)
    at_recipe_budget = [r for r in records if r["distortion_budget"] == recipe_budget or r["method"] == "random"]
    summary = {
        "domain": args.domain,
        "records": records,
        "table": table(records),
        "paired": paired_table(at_recipe_budget),
        "paired_corruption_top1": paired_table(at_recipe_budget, "corruption_top1"),
        "paired_transfer": {task: paired_table(at_recipe_budget, f"transfer:{task}") for task in args.transfer_tasks},
        "corruption_table": corruption_table(records),
        "budget_choice": budget_choice(records),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "run_seconds": round(sum(r["pretrain_seconds"] + r["linear_eval_seconds"] for r in records), 1),
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(summary["table"], summary["paired"], sep="\n\n")
    for task, paired in summary["paired_transfer"].items():
        print("", f"{task} top-1, paired:", paired, sep="\n\n")
    if summary["corruption_table"]:
        corruption = ["Mean corruption top-1, paired:", summary["paired_corruption_top1"], summary["corruption_table"]]
        print("", *corruption, sep="\n\n")
    for choice in summary["budget_choice"]:
        print(
            f"{choice['method']}: RankMe chooses budget {choice['chosen_by_rankme']:g} "
            f"(top-1 {100 * choice['top1_at_chosen']:.1f}); the best is {choice['best_by_top1']:g} "
            f"(top-1 {100 * choice['best_top1']:.1f})"
        )
    print(
        f"total run time {summary['run_seconds'] / 60:.1f} min (this invocation: {summary['wall_seconds'] / 60:.1f} min)"
    )


if __name__ == "__main__":
    main()
