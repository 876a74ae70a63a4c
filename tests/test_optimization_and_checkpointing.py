import json

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from hf_viewmaker.adversarial.checkpoints import list_checkpoints, resolve_checkpoint, save_checkpoint
from hf_viewmaker.adversarial.optimizer import AdversarialOptimizer, distortion_budget_at


@pytest.fixture
def accelerator():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


def _players():
    torch.manual_seed(0)
    encoder, viewmaker = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    return torch.nn.Sequential(viewmaker, encoder), encoder, viewmaker


def _fp16_step(accelerator, model, optimizers, poison: bool = False) -> None:
    loss = model(torch.randn(8, 4)).pow(2).mean()
    accelerator.backward(loss * float("inf") if poison else loss)
    for optimizer in optimizers:
        optimizer.step()
        optimizer.zero_grad()


def test_one_grad_scaler_update_per_step_for_both_players(accelerator):
    # Accelerate makes a GradScaler for fp16 only on accelerators; this is the same code path with a CPU scaler.
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    model, encoder, viewmaker = _players()
    optimizer = AdversarialOptimizer(
        torch.optim.SGD(encoder.parameters(), lr=0.1), torch.optim.Adam(viewmaker.parameters())
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    before = [p.detach().clone() for p in model.parameters()]

    _fp16_step(accelerator, model, [optimizer])
    assert accelerator.scaler.get_scale() == 2.0**11, "a clean step grows the scale once"
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "both players stepped"

    after = [p.detach().clone() for p in model.parameters()]
    _fp16_step(accelerator, model, [optimizer], poison=True)
    assert accelerator.scaler.get_scale() == 2.0**10, "an overflow halves the scale once"
    assert all(torch.equal(a, b) for a, b in zip(after, model.parameters())), "both players skipped"


def test_two_accelerate_optimizers_would_update_the_scaler_twice(accelerator):
    # The failure mode AdversarialOptimizer exists for, kept as a check that the test above can fail.
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    model, encoder, viewmaker = _players()
    sgd, adam = torch.optim.SGD(encoder.parameters(), lr=0.1), torch.optim.Adam(viewmaker.parameters())
    model, sgd, adam = accelerator.prepare(model, sgd, adam)
    _fp16_step(accelerator, model, [sgd, adam])
    assert accelerator.scaler.get_scale() == 2.0**12


def test_frozen_viewmaker_keeps_its_weights_and_state_round_trips():
    model, encoder, viewmaker = _players()
    optimizer = AdversarialOptimizer(
        torch.optim.SGD(encoder.parameters(), lr=0.1), torch.optim.Adam(viewmaker.parameters())
    )
    optimizer.viewmaker_frozen = True
    frozen = [p.detach().clone() for p in viewmaker.parameters()]
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(frozen, viewmaker.parameters()))
    assert len(optimizer.param_groups) == 2 and optimizer.param_groups[0] is optimizer.encoder_optimizer.param_groups[0]

    state = optimizer.state_dict()
    restored = AdversarialOptimizer(
        torch.optim.SGD(encoder.parameters(), lr=0.1), torch.optim.Adam(viewmaker.parameters())
    )
    restored.load_state_dict(state)
    assert restored.viewmaker_frozen
    with pytest.raises(ValueError, match="viewmaker"):
        AdversarialOptimizer(torch.optim.SGD(encoder.parameters(), lr=0.1), None).load_state_dict(state)


@pytest.mark.parametrize("fused", [False, True], ids=["host_check", "fused_kernels"])
def test_a_flagged_step_changes_neither_weights_nor_optimizer_states(fused):
    def train(flags: list[bool]) -> list[torch.Tensor]:
        model, encoder, viewmaker = _players()
        optimizer = AdversarialOptimizer(
            torch.optim.SGD(encoder.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, fused=fused),
            torch.optim.Adam(viewmaker.parameters(), fused=fused),
        )
        taken = 0
        for flag in flags:
            torch.manual_seed(taken)  # the data of the next step taken
            loss = model(torch.randn(8, 4)).pow(2).mean()
            (loss * float("nan") if flag else loss).backward()
            with optimizer.skipping_if(torch.tensor(flag)):
                optimizer.step()
            optimizer.zero_grad()
            taken += not flag
        return [p.detach() for p in model.parameters()]

    # A flagged first step (where torch's fused SGD would leave its momentum buffers uninitialised) and a flagged
    # later step (which fused kernels skip on the device) leave the run exactly as if they had never happened.
    for skipped, plain in zip(train([True, False, True, False]), train([False, False])):
        assert torch.equal(skipped, plain)


def test_distortion_budget_schedule_really_changes_the_budget():
    assert distortion_budget_at(5.0, 0.05) == 0.05
    assert distortion_budget_at(0.0, 0.05, start_budget=0.01, warmup_epochs=4) == 0.01
    assert distortion_budget_at(2.0, 0.05, start_budget=0.01, warmup_epochs=4) == pytest.approx(0.03)
    assert distortion_budget_at(9.0, 0.05, start_budget=0.01, warmup_epochs=4) == 0.05


def test_checkpoints_are_published_only_when_complete(accelerator, tmp_path):
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    for step in (1, 2, 3):
        save_checkpoint(accelerator, tmp_path, step, {"completed_steps": step}, total_limit=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_2", "step_3"]
    assert json.loads((tmp_path / "checkpoints" / "step_3" / "training_state.json").read_text())["completed_steps"] == 3

    # What a kill during a save leaves behind: a partial folder, and a folder without its training state.
    (tmp_path / "checkpoints" / ".partial-step_4").mkdir()
    (tmp_path / "checkpoints" / "step_5").mkdir()
    (tmp_path / "checkpoints" / "step_5" / "model.safetensors").write_bytes(b"")
    assert resolve_checkpoint(tmp_path, "latest").name == "step_3"
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        resolve_checkpoint(tmp_path, str(tmp_path / "checkpoints" / "step_5"))
    save_checkpoint(accelerator, tmp_path, 6, {"completed_steps": 6}, total_limit=2)
    assert not (tmp_path / "checkpoints" / ".partial-step_4").exists()
    assert resolve_checkpoint(tmp_path / "elsewhere", "latest") is None
    del model
