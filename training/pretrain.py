#!/usr/bin/env python
"""Adversarial contrastive pretraining of a viewmaker and an encoder (Tamkin et al., ICLR 2021), with Accelerate.

    accelerate launch training/pretrain.py --config training/configs/quickstart.yaml
    accelerate launch training/pretrain.py --config training/configs/cifar10_viewmaker_simclr.yaml --output_dir runs/c10

A recipe (YAML) sets defaults for every flag below; flags on the command line override it. The flags are the fields
of `hf_viewmaker.arguments.PretrainingRun`'s groups. At the end the output directory holds `viewmaker/` and
`encoder/` (each with its processor, loadable with `AutoModel.from_pretrained`), `views.png`, `training_args.json`
(the groups, read back with `PretrainingRun.load`), `train_results.json` and the model card `README.md`;
`checkpoints/step_N/` hold resumable training states.
"""

import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import send_to_device, set_seed
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader
from tqdm.auto import tqdm

from hf_viewmaker.adversarial import (
    AdversarialStep,
    build_adversarial_optimizer,
    build_pretraining_config,
    build_pretraining_model,
    configure_logging,
    describe_hardware,
    distortion_budget_at,
    framework_versions,
    in_channels_last,
    learning_rate_at,
    load_process_state,
    load_training_state,
    log_image,
    make_accelerator,
    noise_seed,
    prepare_output_dir,
    replica_checksums,
    report_skipped_steps,
    resolve_checkpoint,
    retain_freed_host_memory,
    save_checkpoint,
    start_trackers,
)
from hf_viewmaker.arguments import PretrainingRun, parse_arguments
from hf_viewmaker.arguments import build_parser as build_group_parser
from hf_viewmaker.data import StreamedExamples, build_pipeline, describe_data, fixed_items, image_processor
from hf_viewmaker.data.device_images import DeviceImageDataset, DeviceImageLoader
from hf_viewmaker.evaluation import effective_rank, knn_accuracy
from hf_viewmaker.hub import HubPushError, check_repo_id, push_run_to_hub, write_model_card
from hf_viewmaker.models.pretraining.backbone_encoder import check_backbone_inputs

logger = get_logger(__name__)
# What a finished run leaves in its output folder: a new run there must resume it or replace it explicitly.
FINISHED_RUN_FILES = ("training_args.json", "train_results.json", "encoder", "viewmaker", "views.png", "README.md")


def build_parser(extra_groups: tuple[type, ...] = ()):
    """The flags of every group of `PretrainingRun` (and of `extra_groups`, for scripts that add their own)."""
    return build_group_parser([*PretrainingRun.group_types(), *extra_groups], description=__doc__.split("\n\n")[0])


def check_run(parser, run: PretrainingRun) -> None:
    """Combinations of flags that cannot work, as command-line errors."""
    training, views, optimization = run.training, run.views, run.optimization
    if training.push_to_hub and not training.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id NAMESPACE/NAME")
    if training.push_to_hub:
        try:
            check_repo_id(training.hub_model_id)
        except HubPushError as error:
            parser.error(str(error))
    if training.gradient_checkpointing != "none" and not views.uses_viewmaker:
        parser.error("--gradient_checkpointing recomputes the viewmaker's activations: --view_mode expert has none")
    divmaker = run.objective.viewmaker_objective == "divmaker"
    if divmaker and optimization.adversarial_update == "one_pass":
        parser.error(
            "--viewmaker_objective divmaker trains the encoder and the viewmaker on different losses, which one pass "
            "cannot do: it needs --adversarial_update two_pass (its default), not one_pass"
        )
    if optimization.adversarial_update == "two_pass" and (
        not views.uses_viewmaker or training.gradient_accumulation_steps > 1
    ):
        parser.error(
            f"--adversarial_update two_pass{' (the update of --viewmaker_objective divmaker)' if divmaker else ''} "
            "needs a viewmaker and --gradient_accumulation_steps 1"
        )
    if run.data.streaming:
        problems = {
            "--max_steps (a stream has no length to count epochs in)": training.max_steps is None,
            "--objective simclr (InstDisc's memory bank needs a row per example)": run.objective.objective != "simclr",
            "--data_on_device false": training.data_on_device,
            "no --distortion_budget_warmup_epochs": bool(optimization.distortion_budget_warmup_epochs),
            "no --viewmaker_freeze_epoch but 0 (frozen throughout)": optimization.viewmaker_freeze_epoch
            not in (None, 0),
            "an --audio_normalization other than fit (statistics fitted on a stream's first clips would be biased)": (
                run.data.domain == "audio" and run.inputs.audio_normalization == "fit"
            ),
        }
        needed = [need for need, wrong in problems.items() if wrong]
        if needed:
            parser.error(f"--streaming needs {'; '.join(needed)}")
    if run.model.viewmaker_input == "raw" and (run.data.domain != "sensor" or not views.uses_viewmaker):
        parser.error(
            "--viewmaker_input raw makes a viewmaker perturb raw sensor windows: it needs --domain sensor and a "
            f"viewmaker (--view_mode viewmaker or viewmaker+expert), got --domain {run.data.domain} and --view_mode "
            f"{views.view_mode}"
        )
    if training.data_on_device and run.data.domain != "image":
        parser.error(f"--data_on_device holds images: it needs --domain image, got --domain {run.data.domain}")
    if run.data.domain == "image":
        try:
            image_processor(run.inputs)
        except ValueError as error:
            parser.error(str(error))
    try:  # the models' own checks (e.g. at most 5 residual blocks), before any data load
        config = build_pretraining_config(
            run.model, run.objective, run.views, run.inputs.num_channels, run.inputs.image_size, num_examples=1
        )
        if config.uses_backbone and run.data.domain != "sensor":  # images and log-mels are image_size squared
            check_backbone_inputs(config.encoder_config, run.inputs.num_channels, run.inputs.image_size)
    except ValueError as error:
        parser.error(str(error))


def parse_args(argv: list[str] | None = None) -> PretrainingRun:
    """The run's argument groups from flags, with a `--config` recipe's values as defaults."""
    parser = build_parser()
    run = PretrainingRun(*parse_arguments(parser, argv))
    check_run(parser, run)
    return run


def resolve_resume(run: PretrainingRun, accelerator: Accelerator) -> tuple[Path | None, dict]:
    """The checkpoint to resume from (or `None`) and its training state (`{}` for none). A checkpoint saved with
    arguments that change the results is refused, naming them, unless `--resume_with_changed_arguments`."""
    training = run.training
    if training.resume_from_checkpoint is None:
        return None, {}
    checkpoint = resolve_checkpoint(
        training.output_dir,
        training.resume_from_checkpoint,
        accelerator.num_processes,
        allow_missing_rng_states=training.resume_without_rng_states,
    )
    if checkpoint is None:
        return None, {}
    state = load_training_state(checkpoint)
    try:
        changes = run.changes_from(PretrainingRun.from_dict(state["arguments"])) if "arguments" in state else []
    except (TypeError, ValueError) as error:  # saved by another version of this package
        changes = [f"the checkpoint's arguments cannot be compared ({error})"]
    if state.get("num_processes", accelerator.num_processes) != accelerator.num_processes:
        changes.append(f"processes {state['num_processes']} -> {accelerator.num_processes} (the global batch)")
    if changes and not training.resume_with_changed_arguments:
        raise ValueError(
            f"{checkpoint} was saved by a run with other arguments: {'; '.join(changes)}. Resume with the same ones, "
            "or pass --resume_with_changed_arguments true"
        )
    if changes:
        logger.warning(f"resuming {checkpoint} with changed arguments: {'; '.join(changes)}")
    return checkpoint, state


def training_state(
    run: PretrainingRun, accelerator: Accelerator, completed_steps: int, loss_history, monitor: dict, running: dict
) -> dict:
    """What a checkpoint saves beside `accelerator.save_state`: the position, the results so far (with the losses
    summed since the last logging step, so that a resumed run logs what an uninterrupted one would), and the
    arguments (to refuse a resume that would change them). Every process calls it (the losses are reduced)."""
    return {
        "completed_steps": completed_steps,
        "encoder_loss_history": loss_history["encoder"],
        "viewmaker_loss_history": loss_history["viewmaker"],
        **monitor,
        "running_encoder_loss": accelerator.reduce(running["encoder_loss"], reduction="mean").item(),
        "running_viewmaker_loss": accelerator.reduce(running["viewmaker_loss"], reduction="mean").item(),
        "running_batches": running["batches"],
        "num_processes": accelerator.num_processes,
        "arguments": run.to_dict(),
    }


def build_model(run: PretrainingRun, encoder_processor, num_examples: int | None):
    """The pretraining model of `run`, normalising image views with the statistics of `encoder_processor` (the
    processor saved with the encoder), so that training and everything that later loads the encoder see the same
    inputs. Spectrograms arrive normalised by their processor; with `--viewmaker_input raw`, the model makes them
    from the views with `encoder_processor`'s front end."""
    statistics = {}
    if run.data.domain == "image":
        statistics = {
            "normalize_mean": list(encoder_processor.image_mean),
            "normalize_std": list(encoder_processor.image_std),
        }
    elif run.model.viewmaker_input == "raw":
        if encoder_processor is None:
            raise ValueError("--viewmaker_input raw needs the run's fitted sensor processor, to make the spectrograms")
        statistics = {"front_end": encoder_processor.to_dict()}
    config = build_pretraining_config(
        run.model,
        run.objective,
        run.views,
        run.inputs.num_channels,
        run.inputs.image_size,
        num_examples,
        **statistics,
    )
    return build_pretraining_model(
        config,
        run.training.gradient_checkpointing,
        run.training.channels_last,
        encoder_name_or_path=run.model.encoder_name_or_path,
        viewmaker_name_or_path=run.model.viewmaker_name_or_path,
    )


def build_train_loader(run: PretrainingRun, train_examples, collate_fn, accelerator: Accelerator):
    """Shuffled training batches: a `DataLoader` (for `accelerator.prepare`); with `--data_on_device`, a
    `DeviceImageLoader` whose images are decoded once and held on the device, sharded over the processes; or for a
    stream, this process's part of it in a `StatefulDataLoader`, whose state (its workers' included) resumes it."""
    training = run.training
    if isinstance(train_examples, StreamedExamples):
        return StatefulDataLoader(
            train_examples.for_process(accelerator.process_index, accelerator.num_processes),
            batch_size=training.per_device_train_batch_size,
            drop_last=True,
            num_workers=run.data.dataloader_num_workers,
            collate_fn=collate_fn,
        )
    if not training.data_on_device:
        return DataLoader(
            train_examples,
            batch_size=training.per_device_train_batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=run.data.dataloader_num_workers,
            collate_fn=collate_fn,
        )
    images = DeviceImageDataset.from_examples(
        train_examples, accelerator.device, num_workers=run.data.dataloader_num_workers
    )
    return DeviceImageLoader(
        images,
        training.per_device_train_batch_size,
        seed=training.seed,
        num_replicas=accelerator.num_processes,
        rank=accelerator.process_index,
    )


@torch.no_grad()
def embed(
    accelerator: Accelerator, model, loader: DataLoader, make_inputs
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The encoder's contrastive embeddings and pooled features of clean, normalised inputs, and their labels (`None`
    without), for a whole (sharded) split, gathered on every process."""
    model = accelerator.unwrap_model(model)
    embeddings, pooled, labels = [], [], []
    for batch in tqdm(loader, desc="monitor", leave=False, disable=not accelerator.is_local_main_process):
        out = model.encoder(model.normalize(make_inputs(batch, None, False)[0]))
        parts = (out.embeddings, out.pooler_output) + ((batch["labels"],) if "labels" in batch else ())
        gathered = accelerator.gather_for_metrics(parts)
        embeddings.append(gathered[0].float())
        pooled.append(gathered[1].float())
        labels += gathered[2:]
    return torch.cat(embeddings), torch.cat(pooled), torch.cat(labels) if labels else None


def save_final(accelerator: Accelerator, model, processors: dict, run: PretrainingRun, grid, results) -> None:
    """`viewmaker/` and `encoder/` with their processors, `views.png`, `training_args.json` and `train_results.json`,
    published by renaming a finished scratch folder so an interrupted save leaves nothing that looks complete."""
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(model)
    output_dir = Path(run.training.output_dir)
    scratch = output_dir / ".partial-final"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    parts = {"encoder": model.encoder, "viewmaker": model.viewmaker}
    for name, part in parts.items():
        if part is not None:
            part.save_pretrained(scratch / name)
            processors[name].save_pretrained(scratch / name)
    if grid is not None:
        grid.save(scratch / "views.png")
    run.save(scratch)
    (scratch / "train_results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    for path in scratch.iterdir():
        target = output_dir / path.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(path, target)
    scratch.rmdir()


def main(argv: list[str] | None = None) -> None:
    run = parse_args(argv)
    data, training, optimization = run.data, run.training, run.optimization
    accelerator = make_accelerator(
        cpu=training.cpu,
        mixed_precision=training.mixed_precision,
        log_with=training.trackers,
        project_dir=training.output_dir,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        # Two passes leave one player without gradients each; a transformers backbone may hold parameters that its
        # forward does not use (e.g. a mask token).
        find_unused_parameters=optimization.adversarial_update == "two_pass" or run.model.uses_backbone,
        dynamo_backend=training.torch_compile_backend if training.torch_compile else "no",
    )
    if accelerator.device.type == "cpu":  # page faults otherwise grow the step's cost with its size
        retain_freed_host_memory()
    configure_logging()
    logger.info(accelerator.state, main_process_only=False)
    set_seed(training.seed)
    # Everything that can refuse the run does so before the data are read and the first step is taken.
    checkpoint, resumed = resolve_resume(run, accelerator)
    prepare_output_dir(
        training.output_dir,
        resuming=checkpoint is not None,
        overwrite=training.overwrite_output_dir,
        run_files=FINISHED_RUN_FILES,
        delete=accelerator.is_main_process,
    )
    accelerator.wait_for_everyone()

    pipeline = build_pipeline(
        data, run.inputs, views=run.views, seed=training.seed, viewmaker_input=run.model.viewmaker_input
    )
    train_examples, eval_examples = pipeline.train, pipeline.validation
    data_read = describe_data(data, pipeline)
    logger.info(f"data: {data_read}")
    train_loader = build_train_loader(run, train_examples, pipeline.train_collate, accelerator)
    if not pipeline.streaming and len(train_loader) == 0:
        raise ValueError(
            f"{len(train_examples)} training examples make no full batch of {training.per_device_train_batch_size}"
        )
    model = build_model(run, pipeline.processors["encoder"], None if pipeline.streaming else len(train_examples))
    make_inputs = in_channels_last(pipeline.make_inputs) if training.channels_last else pipeline.make_inputs
    players = build_adversarial_optimizer(model, optimization)
    if pipeline.streaming:  # already this process's part: Accelerate would split it again
        model, optimizer = accelerator.prepare(model, players)
    else:
        model, optimizer, train_loader = accelerator.prepare(model, players, train_loader)
    step = AdversarialStep(
        accelerator,
        model,
        optimizer,
        players,
        make_inputs,
        optimization.adversarial_update,
        optimization.max_grad_norm,
        encoder_views=pipeline.encoder_views,
    )
    # Unshuffled loaders of the per-epoch monitor: the validation split (RankMe, and the kNN queries) and, with
    # labels, a slice of the training set as the kNN bank.
    monitor_splits = {}
    if eval_examples is not None:
        monitor_splits["queries"] = fixed_items(eval_examples)
        if data.label_column_name is not None:
            monitor_splits["bank"] = pipeline.leading_train_examples(training.knn_max_train_samples)
    monitor_loaders = {
        name: accelerator.prepare(
            DataLoader(
                split,
                batch_size=training.per_device_eval_batch_size,
                num_workers=data.dataloader_num_workers,
                collate_fn=pipeline.eval_collate,
            )
        )
        for name, split in monitor_splits.items()
    }
    unwrapped = accelerator.unwrap_model(model)

    # A streamed run is one epoch of --max_steps steps (what happens per epoch, the kNN monitor and "epoch"
    # checkpoints, happens at its end): each process's stream goes on into its next pass by itself.
    steps_per_epoch = (
        max(training.max_steps, 1)
        if pipeline.streaming
        else math.ceil(len(train_loader) / training.gradient_accumulation_steps)
    )
    # --max_steps 0 saves the untrained models (with the run's fitted processors): the random-initialised baseline.
    max_steps = training.max_steps if training.max_steps is not None else training.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_steps / steps_per_epoch)

    completed_steps = 0
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        completed_steps = resumed["completed_steps"]
        if pipeline.streaming:
            train_loader.load_state_dict(load_process_state(checkpoint, accelerator.process_index)["train_loader"])
        logger.info(f"resumed from {checkpoint} at step {completed_steps}")
    start_epoch, resume_batches = divmod(completed_steps, steps_per_epoch)
    resume_batches *= training.gradient_accumulation_steps
    if pipeline.streaming:  # the loader's own state resumes it
        resume_batches = 0

    if training.trackers:
        start_trackers(
            accelerator,
            training.tracker_project_name,
            training.run_name or Path(training.output_dir).name,
            run.flat(),
        )
    total_batch = (
        training.per_device_train_batch_size * accelerator.num_processes * training.gradient_accumulation_steps
    )
    examples = "streamed" if pipeline.streaming else len(train_examples)
    logger.info(f"{examples} examples, {num_epochs} epochs, {max_steps} steps, batch {total_batch}")
    progress = tqdm(range(max_steps), initial=completed_steps, disable=not accelerator.is_local_main_process)

    # Noise is drawn from a generator seeded by (seed, micro-step, process) (`noise_seed`), so a resumed run draws
    # what an uninterrupted one would have, without relying on the global RNG's position.
    generator = torch.Generator(device=accelerator.device)
    micro_step = completed_steps * training.gradient_accumulation_steps
    nonfinite_in_a_row, window_nonfinite = 0, torch.zeros((), device=accelerator.device)
    # Whether each step since the last logging step was skipped: kept on the device, read with the loss.
    skipped_steps = torch.zeros(training.logging_steps, dtype=torch.bool, device=accelerator.device)
    logged_step = completed_steps
    running = {
        "encoder_loss": torch.tensor(resumed.get("running_encoder_loss", 0.0), device=accelerator.device),
        "viewmaker_loss": torch.tensor(resumed.get("running_viewmaker_loss", 0.0), device=accelerator.device),
        "batches": resumed.get("running_batches", 0),
    }
    grid, started = None, time.perf_counter()
    # A resumed run's results hold the whole history, from before the interruption too.
    loss_history = {
        player: [tuple(entry) for entry in resumed.get(f"{player}_loss_history", [])]
        for player in ("encoder", "viewmaker")
    }
    # The monitor's latest values (a resumed run's from before the interruption until its next epoch ends).
    monitor = {name: resumed.get(name) for name in ("knn_accuracy", "rankme", "rankme_max")}
    skipped_examples = 0
    run_started = started
    budget = run.model.distortion_budget

    def checkpoint_now() -> None:
        """A checkpoint of the run as it stands (a stream's loader state per process)."""
        save_checkpoint(
            accelerator,
            training.output_dir,
            completed_steps,
            training_state(run, accelerator, completed_steps, loss_history, monitor, running),
            training.checkpoints_total_limit,
            process_state={"train_loader": train_loader.state_dict()} if pipeline.streaming else None,
        )

    for epoch in range(start_epoch, num_epochs):
        model.train()
        if not pipeline.streaming:
            train_loader.set_epoch(epoch)
        if hasattr(train_examples, "set_epoch"):  # datasets that draw new random windows each epoch (Pamap2)
            train_examples.set_epoch(epoch)
        freeze_epoch = optimization.viewmaker_freeze_epoch
        step.freeze_viewmaker(freeze_epoch is not None and epoch >= freeze_epoch)
        loader = train_loader
        if epoch == start_epoch and resume_batches:
            loader = (
                train_loader.skip_first_batches(resume_batches)
                if training.data_on_device
                else accelerator.skip_first_batches(train_loader, resume_batches)
            )
        for batch in loader:
            if pipeline.streaming:
                batch = send_to_device(batch, accelerator.device)
            with accelerator.accumulate(model):
                budget = distortion_budget_at(
                    completed_steps / steps_per_epoch,
                    run.model.distortion_budget,
                    optimization.distortion_budget_start,
                    optimization.distortion_budget_warmup_epochs,
                )
                generator.manual_seed(
                    noise_seed(training.seed, micro_step, accelerator.num_processes, accelerator.process_index)
                )
                micro_step += 1
                learning_rate = learning_rate_at(
                    completed_steps,
                    max_steps,
                    optimization.learning_rate,
                    optimization.lr_scheduler_type,
                    optimization.num_warmup_steps,
                )
                for group in players.encoder_optimizer.param_groups:
                    group["lr"] = learning_rate
                encoder_loss, viewmaker_loss = step.forward_backward(batch, generator, distortion_budget=budget)
                window_nonfinite += ~torch.isfinite(encoder_loss)
                running["encoder_loss"] += encoder_loss
                if viewmaker_loss is not None:
                    window_nonfinite += ~torch.isfinite(viewmaker_loss)
                    running["viewmaker_loss"] += viewmaker_loss
                running["batches"] += 1
                if "num_skipped" in batch:  # unreadable examples replaced under --skip_bad_examples
                    skipped_examples += batch["num_skipped"].sum()
                if accelerator.sync_gradients:
                    skipped_steps[completed_steps - logged_step] = step.apply(window_nonfinite)
                    window_nonfinite.zero_()
                optimizer.zero_grad()

            if not accelerator.sync_gradients:
                continue
            completed_steps += 1
            progress.update(1)
            if completed_steps % training.logging_steps == 0 or completed_steps == max_steps:
                nonfinite_in_a_row = report_skipped_steps(
                    skipped_steps[: completed_steps - logged_step].tolist(),
                    logged_step,
                    nonfinite_in_a_row,
                    training.max_nonfinite_steps,
                )
                logged_step = completed_steps
                loss = accelerator.reduce(running["encoder_loss"], reduction="mean").item() / running["batches"]
                elapsed = time.perf_counter() - started
                metrics = {
                    "train/encoder_loss": loss,
                    "train/distortion_budget": budget if unwrapped.viewmaker is not None else 0.0,
                    "train/learning_rate": learning_rate,
                    "train/examples_per_second": running["batches"]
                    * training.per_device_train_batch_size
                    * accelerator.num_processes
                    / elapsed,
                    "train/epoch": completed_steps / steps_per_epoch,
                }
                if torch.is_tensor(skipped_examples):
                    metrics["train/skipped_examples"] = accelerator.reduce(skipped_examples, reduction="sum").item()
                    if metrics["train/skipped_examples"]:
                        logger.warning(f"{metrics['train/skipped_examples']} unreadable examples skipped so far")
                if unwrapped.viewmaker is not None:
                    metrics["train/viewmaker_loss"] = (
                        accelerator.reduce(running["viewmaker_loss"], reduction="mean").item() / running["batches"]
                    )
                    loss_history["viewmaker"].append((completed_steps, metrics["train/viewmaker_loss"]))
                progress.set_postfix(loss=f"{loss:.4f}")
                loss_history["encoder"].append((completed_steps, loss))
                accelerator.log(metrics, step=completed_steps)
                running["encoder_loss"].zero_()
                running["viewmaker_loss"].zero_()
                running["batches"], started = 0, time.perf_counter()
            if training.checkpoint_every and completed_steps % training.checkpoint_every == 0:
                checkpoint_now()
            if completed_steps >= max_steps:
                break

        if monitor_loaders:
            model.eval()
            query_embeddings, query_features, query_labels = embed(
                accelerator, model, monitor_loaders["queries"], make_inputs
            )
            # RankMe's ceiling, min(N, D), puts the value in proportion: D for a big enough validation split.
            monitor["rankme"], monitor["rankme_max"] = effective_rank(query_features), min(query_features.shape)
            logger.info(f"epoch {epoch}: RankMe {monitor['rankme']:.2f} (at most {monitor['rankme_max']})")
            accelerator.log({"eval/rankme": monitor["rankme"]}, step=completed_steps)
            if "bank" in monitor_loaders and query_labels is not None:
                bank_embeddings, _, bank_labels = embed(accelerator, model, monitor_loaders["bank"], make_inputs)
                monitor["knn_accuracy"] = knn_accuracy(
                    bank_embeddings,
                    bank_labels,
                    query_embeddings,
                    query_labels,
                    int(max(bank_labels.max(), query_labels.max())) + 1,
                    training.knn_k,
                    training.knn_temperature,
                )
                logger.info(f"epoch {epoch}: kNN accuracy {monitor['knn_accuracy']:.4f}")
                accelerator.log({"eval/knn_accuracy": monitor["knn_accuracy"]}, step=completed_steps)
        if unwrapped.viewmaker is not None and accelerator.is_main_process:
            grid = pipeline.view_grid(unwrapped.viewmaker, distortion_budget=budget)
            log_image(accelerator, "views", grid, completed_steps)
        if training.checkpointing_steps == "epoch":
            checkpoint_now()
        if completed_steps >= max_steps:
            break

    accelerator.wait_for_everyone()
    checksums = replica_checksums(accelerator, model)
    if len(set(checksums)) != 1:
        raise RuntimeError(f"the processes' parameters diverged (checksums {checksums}): not saving")
    results = {
        "completed_steps": completed_steps,
        "train_runtime_seconds": time.perf_counter() - run_started,
        "encoder_loss_history": loss_history["encoder"],
        "viewmaker_loss_history": loss_history["viewmaker"],
        "skipped_examples": int(accelerator.reduce(skipped_examples, reduction="sum").item())
        if torch.is_tensor(skipped_examples)
        else 0,
        **monitor,
        "data": data_read,
        "num_processes": accelerator.num_processes,
        "hardware": describe_hardware(accelerator),
        "framework_versions": framework_versions(),
        "mixed_precision": accelerator.mixed_precision,
        "replica_parameter_checksums": checksums,
    }
    save_final(accelerator, model, pipeline.processors, run, grid, results)
    if accelerator.is_main_process:
        write_model_card(training.output_dir, repo_id=training.hub_model_id)
        if training.push_to_hub:
            pushed = push_run_to_hub(training.output_dir, training.hub_model_id, private=training.hub_private)
            logger.info(f"pushed to {pushed}")
    # Waiting here (without the GIL) also lets gloo's worker threads release the tensors of the last collectives;
    # tearing the process group down while one of them still waits for the GIL deadlocks at exit.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    logger.info(f"saved to {training.output_dir}")


if __name__ == "__main__":
    main()
