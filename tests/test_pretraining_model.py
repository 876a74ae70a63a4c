import pytest
import torch
from transformers import AutoModelForPreTraining

from hf_viewmaker import (
    ContrastiveResNetConfig,
    DivmakerLoss,
    ViewmakerConfig,
    ViewmakerForContrastivePretraining,
    ViewmakerPretrainingConfig,
)

TINY_ENCODER = ContrastiveResNetConfig(
    num_channels=1, stem_channels=8, depths=[1, 1], hidden_sizes=[8, 16], embedding_dim=8, image_size=12
)
TINY_VIEWMAKER = ViewmakerConfig(num_channels=1, num_res_blocks=1, distortion_budget=0.1, clamp=False)


def _model(**kwargs) -> ViewmakerForContrastivePretraining:
    torch.manual_seed(0)
    config = ViewmakerPretrainingConfig(
        viewmaker_config=TINY_VIEWMAKER,
        encoder_config=TINY_ENCODER,
        normalize_mean=[0.5],
        normalize_std=[0.25],
        **kwargs,
    )
    return ViewmakerForContrastivePretraining(config)


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_one_backward_gives_the_viewmaker_the_reversed_gradient(weight):
    model = _model(viewmaker_loss_weight=weight)
    x = torch.rand(6, 1, 12, 12)
    out = model(x, generator=torch.Generator().manual_seed(3))
    out.loss.backward()

    # The same computation without the reversal, differentiated by hand, as the original made it: one viewmaker
    # call per view (each drawing its noise in turn) and one encoder call per view (BatchNorm sees each view's batch).
    vm_params, enc_params = list(model.viewmaker.parameters()), list(model.encoder.parameters())
    generator = torch.Generator().manual_seed(3)
    views = [model.viewmaker(x, generator=generator).views for _ in range(2)]
    z1, z2 = (model.encoder((v - 0.5) / 0.25).embeddings for v in views)
    loss = model.objective(z1, z2)
    grads = torch.autograd.grad(loss, vm_params + enc_params)
    torch.testing.assert_close(out.encoder_loss, loss.detach())
    torch.testing.assert_close(out.viewmaker_loss, -weight * loss.detach())
    for p, g in zip(vm_params, grads[: len(vm_params)]):
        torch.testing.assert_close(p.grad, -weight * g, rtol=1e-4, atol=1e-6)
    for p, g in zip(enc_params, grads[len(vm_params) :]):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_gradient_checkpointing_recomputes_the_viewmaker_and_keeps_the_update():
    plain, checkpointed = _model(), _model()
    # transformers 5.x renamed it activation checkpointing; `gradient_checkpointing_enable` is the older alias.
    getattr(checkpointed, "activation_checkpointing_enable", checkpointed.gradient_checkpointing_enable)()
    assert checkpointed.viewmaker.gradient_checkpointing
    x = torch.rand(6, 1, 12, 12)
    for model in (plain, checkpointed):
        model(x, generator=torch.Generator().manual_seed(3)).loss.backward()
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_views_and_embeddings_are_returned_per_view():
    model = _model()
    x = torch.rand(4, 1, 12, 12)
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert len(out.views) == 2 and out.views[0].shape == x.shape
    assert not torch.equal(out.views[0], out.views[1]), "two viewmaker calls draw different noise"
    assert (out.views[0] - x).abs().mean().item() == pytest.approx(0.1, rel=1e-2)
    assert [tuple(e.shape) for e in out.embeddings] == [(4, 8), (4, 8)]


@pytest.mark.parametrize("phase", ["both", "encoder", "viewmaker"])
def test_every_phase_makes_the_views_of_one_viewmaker_call_per_view_and_encodes_each_view_on_its_own(phase):
    # The original's computation: view 1 then view 2, each from its own viewmaker call drawing its noise in turn, and
    # one encoder call per view, whose BatchNorm normalises that view's batch. In float64, so that only a difference
    # of what is computed, not of the order of a sum (one-pass makes both views in one call), could fail it.
    model = _model().double()
    x1, x2 = torch.rand(4, 1, 12, 12, dtype=torch.float64), torch.rand(4, 1, 12, 12, dtype=torch.float64)
    generator = torch.Generator().manual_seed(5)
    views = [model.viewmaker(x, generator=generator).views for x in (x1, x2)]
    embeddings = [model.encoder((v - 0.5) / 0.25).embeddings for v in views]
    out = model(x1, pixel_values_2=x2, generator=torch.Generator().manual_seed(5), adversarial_phase=phase)
    for got, expected in zip(out.views + out.embeddings, views + embeddings):
        torch.testing.assert_close(got, expected)
    # Not what one encoder call on both views gives: its BatchNorm would mix the views' statistics.
    together = model.encoder((torch.cat(views) - 0.5) / 0.25).embeddings
    assert not torch.allclose(together, torch.cat(embeddings))


def test_expert_mode_encodes_the_given_views_without_a_viewmaker():
    model = _model(view_mode="expert")
    assert model.viewmaker is None
    x1, x2 = torch.rand(4, 1, 12, 12), torch.rand(4, 1, 12, 12)
    out = model(x1, pixel_values_2=x2)
    assert torch.equal(out.views[0], x1) and torch.equal(out.views[1], x2)
    assert out.viewmaker_loss is None
    out.loss.backward()


def test_instdisc_updates_the_bank_once_per_training_forward():
    model = _model(objective="instdisc", num_examples=10, num_negatives=16)
    bank = model.objective.memory_bank.clone()
    x, indices = torch.rand(3, 1, 12, 12), torch.tensor([1, 4, 7])
    out = model(x, indices=indices)
    out.loss.backward()
    changed = (model.objective.memory_bank != bank).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [1, 4, 7]
    assert len(out.views) == 1

    model.eval()
    bank = model.objective.memory_bank.clone()
    with torch.no_grad():
        model(x, indices=indices)
    assert torch.equal(model.objective.memory_bank, bank), "evaluation must not move the bank"
    with pytest.raises(ValueError, match="indices"):
        model(x)


def test_save_and_load_with_auto_class(tmp_path):
    model = _model(objective="instdisc", num_examples=10, num_negatives=16)
    model.objective.update_memory(torch.randn(2, 8), torch.tensor([0, 9]))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path)
    assert isinstance(loaded, ViewmakerForContrastivePretraining)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"view_mode": "both"}, "view_mode"),
        ({"objective": "byol"}, "objective"),
        ({"objective": "instdisc"}, "num_examples"),
        ({"normalize_mean": [0.5, 0.5], "normalize_std": [0.2, 0.2]}, "normalize_mean"),
        ({"normalize_mean": [0.5]}, "normalize_std"),
        ({"viewmaker_config": ViewmakerConfig(num_channels=3)}, "num_channels"),
        ({"viewmaker_objective": "minimax"}, "viewmaker_objective must be one of"),
        ({"viewmaker_objective": "divmaker", "view_mode": "expert"}, "needs view_mode 'viewmaker' or"),
        ({"viewmaker_objective": "divmaker", "objective": "instdisc", "num_examples": 8}, "objective 'simclr'"),
    ],
)
def test_invalid_config_values_name_the_field(kwargs, field):
    base = {"viewmaker_config": TINY_VIEWMAKER, "encoder_config": TINY_ENCODER}
    with pytest.raises(ValueError, match=field):
        ViewmakerPretrainingConfig(**{**base, **kwargs})


def test_two_pass_phases_train_one_player_each():
    model = _model()
    x = torch.rand(4, 1, 12, 12)
    out = model(x, generator=torch.Generator().manual_seed(1), adversarial_phase="encoder")
    out.loss.backward()
    assert all(p.grad is None for p in model.viewmaker.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())
    model.zero_grad(set_to_none=True)

    out = model(x, generator=torch.Generator().manual_seed(1), adversarial_phase="viewmaker")
    torch.testing.assert_close(out.loss, -out.encoder_loss)
    out.loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.encoder.parameters()), "weights are frozen only during the pass"

    # Same views and weights: the viewmaker's gradient equals the one-pass (gradient reversal) gradient.
    two_pass = [p.grad.clone() for p in model.viewmaker.parameters()]
    model.zero_grad(set_to_none=True)
    model(x, generator=torch.Generator().manual_seed(1)).loss.backward()
    for a, b in zip(two_pass, [p.grad for p in model.viewmaker.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="adversarial_phase"):
        model(x, adversarial_phase="viewmaker_only")


@pytest.mark.parametrize("second_input", [False, True], ids=["one_input", "two_inputs"])
def test_divmaker_viewmaker_phase_minimises_the_diversity_loss_against_normalised_clean_anchors(second_input):
    model = _model(viewmaker_objective="divmaker")
    x = torch.rand(6, 1, 12, 12)
    x2 = torch.rand(6, 1, 12, 12) if second_input else None
    out = model(x, x2, generator=torch.Generator().manual_seed(3), adversarial_phase="viewmaker")
    out.loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.viewmaker.parameters())

    # By hand: one viewmaker call per view, and the clean inputs embedded through the same normalisation.
    inputs = [x, x if x2 is None else x2]
    generator = torch.Generator().manual_seed(3)
    views = [model.viewmaker(i, generator=generator).views for i in inputs]
    with torch.no_grad():
        z1, z2 = (model.encoder((v - 0.5) / 0.25).embeddings for v in views)
        anchors = [model.encoder((i - 0.5) / 0.25).embeddings for i in inputs[: 1 + second_input]]
        unnormalised = [model.encoder(i).embeddings for i in inputs[: 1 + second_input]]
    expected = DivmakerLoss(temperature=0.07)(anchors, [z1, z2])
    torch.testing.assert_close(out.loss.detach(), expected)
    torch.testing.assert_close(out.viewmaker_loss, expected)
    torch.testing.assert_close(out.encoder_loss, model.objective(z1, z2))
    # The authors' un-normalised anchor would give another loss.
    assert not torch.allclose(DivmakerLoss(temperature=0.07)(unnormalised, [z1, z2]), expected)


def test_divmaker_encoder_phase_is_the_adversarial_encoder_phase():
    adversarial, divmaker = _model(), _model(viewmaker_objective="divmaker")
    x = torch.rand(4, 1, 12, 12)
    outputs = []
    for model in (adversarial, divmaker):
        outputs.append(model(x, generator=torch.Generator().manual_seed(1), adversarial_phase="encoder"))
        outputs[-1].loss.backward()
    torch.testing.assert_close(outputs[0].loss, outputs[1].loss)
    assert outputs[1].viewmaker_loss is None
    for a, b in zip(adversarial.encoder.parameters(), divmaker.encoder.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


def test_divmaker_gives_the_viewmaker_another_gradient_than_the_adversary_and_refuses_one_pass():
    adversarial, divmaker = _model(), _model(viewmaker_objective="divmaker")
    x = torch.rand(6, 1, 12, 12)
    gradients = []
    for model in (adversarial, divmaker):
        model(x, generator=torch.Generator().manual_seed(3), adversarial_phase="viewmaker").loss.backward()
        gradients.append(torch.cat([p.grad.flatten() for p in model.viewmaker.parameters()]))
    # Same weights, same views: only the viewmaker's loss differs, and with it the direction of its update.
    assert torch.nn.functional.cosine_similarity(*gradients, dim=0) < 0.5
    with pytest.raises(ValueError, match="adversarial_phase='encoder', then 'viewmaker'"):
        divmaker(x)


def _trainer(model, tmp_path, optimizer, **arguments):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    rows = {"pixel_values": torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(1)).tolist()}
    rows["label"] = list(range(16))  # a dataset's label column (collated as `labels`), unused by the loss
    args = TrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, save_strategy="no", lr_scheduler_type="constant",
        max_grad_norm=0, seed=0, **arguments,
    )  # fmt: skip
    return Trainer(model=model, args=args, train_dataset=Dataset.from_dict(rows).with_format("torch"),
                   optimizers=(optimizer, None))  # fmt: skip


def _adversarial_optimizer(model, encoder_lr=0.03):
    from hf_viewmaker import AdversarialOptimizer

    encoder = torch.optim.SGD(model.encoder.parameters(), lr=encoder_lr)
    viewmaker = torch.optim.Adam(model.viewmaker.parameters(), lr=1e-3) if model.viewmaker is not None else None
    return AdversarialOptimizer(encoder, viewmaker)


def test_the_pretraining_model_trains_under_the_transformers_trainer(tmp_path):
    """Under `Trainer`, with the paper's two optimizers behind `AdversarialOptimizer`, both players keep their learning
    rates and both change (the viewmaker through the gradient reversal)."""
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = _adversarial_optimizer(model)
    _trainer(model, tmp_path, optimizer, max_steps=3, per_device_train_batch_size=8).train()
    assert [group["lr"] for group in optimizer.param_groups] == [0.03, 1e-3]
    for part in ("encoder.", "viewmaker."):
        assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if k.startswith(part)), part


def test_gradient_accumulation_under_the_trainer_averages_the_loss(tmp_path):
    """2 accumulated batches of 8 update the encoder about as much as 1 batch of 16: `Trainer` divides the loss by
    the accumulation steps (the model says it takes no loss kwargs), even with a labels column."""
    updates = []
    for batch, steps in ((16, 1), (8, 2)):
        model = _model(view_mode="expert")
        before = torch.cat([p.detach().flatten().clone() for p in model.encoder.parameters()])
        trainer = _trainer(
            model, tmp_path / str(batch), _adversarial_optimizer(model, encoder_lr=0.1), max_steps=1,
            per_device_train_batch_size=batch, gradient_accumulation_steps=steps,
        )  # fmt: skip
        trainer.train()
        after = torch.cat([p.detach().flatten() for p in model.encoder.parameters()])
        updates.append((after - before).norm().item())
    assert 0.7 < updates[1] / updates[0] < 1.4  # not ~2, as without the division
