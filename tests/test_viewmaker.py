import collections
import json

import pytest
import torch
from safetensors.torch import load_file
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoConfig, AutoModel

from hf_viewmaker import ViewmakerConfig, ViewmakerModel, convolution_saving_checkpoint_context


def _original_case(fixtures_dir, name):
    folder = fixtures_dir / "original_viewmaker"
    case = next(c for c in json.loads((folder / "cases.json").read_text())["viewmaker_cases"] if c["name"] == name)
    tensors = load_file(folder / f"{name}.safetensors")
    return case, tensors


@pytest.mark.parametrize("name", ["cifar_l1_clamp", "spectrogram_dct_2blocks"])
def test_reproduces_original_views(fixtures_dir, name):
    case, tensors = _original_case(fixtures_dir, name)
    config = ViewmakerConfig(
        **{k: case[k] for k in ("num_channels", "distortion_budget", "activation", "clamp", "frequency_domain")},
        num_res_blocks=case["num_res_blocks"],
    )
    model = ViewmakerModel(config).eval()
    prefix = "state_dict."
    state_dict = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    # The original registers all 5 residual blocks; ours builds only those that run.
    unused = {f"res{i}." for i in range(case["num_res_blocks"] + 1, 6)}
    state_dict = {k: v for k, v in state_dict.items() if not any(k.startswith(u) for u in unused)}
    model.load_state_dict(state_dict, strict=True)

    torch.manual_seed(case["noise_seed"])
    views = model(tensors["input"]).views
    torch.testing.assert_close(views, tensors["expected_views"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "channels,expected",
    # Parameters actually used with 3 residual blocks, docs/method.md §1.
    [(3, 1_120_131), (1, 1_109_761), (52, 1_374_196)],
)
def test_builds_only_the_residual_blocks_that_run(channels, expected):
    model = ViewmakerModel(ViewmakerConfig(num_channels=channels))
    assert sum(p.numel() for p in model.parameters()) == expected
    assert not hasattr(model, "res4")


@pytest.mark.parametrize(
    "norm,measure",
    [
        ("l1", lambda d: d.abs().mean(dim=(1, 2, 3))),
        ("l2", lambda d: d.square().mean(dim=(1, 2, 3)).sqrt()),
    ],
)
def test_sphere_budgets_are_met_per_example(norm, measure):
    model = ViewmakerModel(ViewmakerConfig(distortion_budget=0.1, budget_norm=norm, clamp=False))
    x = torch.rand(3, 3, 16, 16)
    out = model(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.views, x + out.perturbation)
    # Equality up to the original's 1e-4 stabiliser in the denominator.
    torch.testing.assert_close(measure(out.perturbation), torch.full((3,), 0.1), rtol=2e-3, atol=0)


def test_linf_budget_is_a_box():
    model = ViewmakerModel(ViewmakerConfig(distortion_budget=0.03, budget_norm="linf", clamp=False))
    delta = model(torch.rand(2, 3, 12, 12)).perturbation
    assert delta.abs().max() < 0.03
    assert delta.abs().max() > 0.0


def test_clamped_views_are_valid_images():
    model = ViewmakerModel(ViewmakerConfig(distortion_budget=0.5, num_res_blocks=1))
    views = model(torch.rand(2, 3, 8, 8)).views
    assert views.min() >= 0.0 and views.max() <= 1.0


@pytest.mark.parametrize(
    "config,shape",
    [
        (ViewmakerConfig(num_res_blocks=1), (2, 3, 30, 17)),
        (ViewmakerConfig(num_res_blocks=0, frequency_domain=True, clamp=False), (2, 3, 9, 14)),
        (ViewmakerConfig(num_res_blocks=1, downsample_to=[8, 6], clamp=False), (1, 3, 21, 13)),
        (ViewmakerConfig(num_channels=6, spatial_dims=1, clamp=False), (2, 6, 99)),
        (ViewmakerConfig(num_channels=2, spatial_dims=1, frequency_domain=True, clamp=False), (2, 2, 37)),
    ],
)
def test_views_keep_any_input_shape(config, shape):
    out = ViewmakerModel(config)(torch.rand(shape))
    assert out.views.shape == shape
    assert out.perturbation.shape == shape


def test_frequency_domain_bounds_the_dct_of_the_perturbation():
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=0, frequency_domain=True, clamp=False))
    x = torch.rand(2, 3, 8, 12, dtype=torch.float64).float()
    delta = model(x).perturbation.double()

    # Unnormalised DCT-II along each spatial axis (scipy's type-2 without norm), built independently of the model.
    def dct(v, dim):
        n = v.shape[dim]
        k = torch.arange(n, dtype=torch.float64)
        basis = 2 * torch.cos(torch.pi * k[:, None] * (2 * k[None, :] + 1) / (2 * n))
        return torch.movedim(torch.movedim(v, dim, -1) @ basis.T, -1, dim)

    spectrum = dct(dct(delta, -1), -2)
    torch.testing.assert_close(
        spectrum.abs().mean(dim=(1, 2, 3)), torch.full((2,), 0.05, dtype=torch.float64), rtol=2e-3, atol=0
    )


def test_generator_makes_views_reproducible_without_touching_global_rng():
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=1))
    x = torch.rand(2, 3, 8, 8)
    state = torch.random.get_rng_state()
    a = model(x, generator=torch.Generator().manual_seed(7)).views
    b = model(x, generator=torch.Generator().manual_seed(7)).views
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(model(x).views, model(x).views), "fresh noise must give a new view at every call"


@pytest.mark.parametrize("downsample", [None, 12])
def test_noise_drawn_per_call_makes_the_same_views_whichever_calls_are_batched_together(downsample):
    # Two calls' noise maps, concatenated, given to one call on both batches: the same views and gradients as the two
    # calls (the network normalises per example), and what a generator draws does not depend on the batching. In
    # float64, so that only a difference of what is computed, not of the order of a sum, could fail it.
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=2, clamp=False, downsample_to=downsample)).double()
    x1, x2 = torch.rand(3, 3, 16, 16, dtype=torch.float64), torch.rand(3, 3, 16, 16, dtype=torch.float64)
    generator = torch.Generator().manual_seed(7)
    separate = [model(x, generator=generator).views for x in (x1, x2)]
    separate_grads = torch.autograd.grad(sum(v.square().sum() for v in separate), list(model.parameters()))

    generator = torch.Generator().manual_seed(7)
    noise = [model.draw_noise(x, generator) for x in (x1, x2)]
    joint = model(torch.cat([x1, x2]), noise=[torch.cat(maps) for maps in zip(*noise)]).views
    joint_grads = torch.autograd.grad(joint.square().sum(), list(model.parameters()))
    torch.testing.assert_close(joint, torch.cat(separate))
    for a, b in zip(joint_grads, separate_grads):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="noise must be maps of shapes"):
        model(x1, noise=noise[0][:1])


def test_budget_projection_runs_in_float32_under_autocast():
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=1, clamp=False))
    x = torch.rand(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.views.dtype == torch.float32
    # bf16 keeps ~3 significant digits; the float32 projection keeps the budget to the stabiliser's precision.
    torch.testing.assert_close(out.perturbation.abs().mean(dim=(1, 2, 3)), torch.full((2,), 0.05), rtol=2e-3, atol=0)


def test_gradients_reach_the_viewmaker():
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=1))
    model(torch.rand(2, 3, 8, 8)).views.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("noise_source", ["generator", "global RNG"])
@pytest.mark.parametrize("mode", ["full", "selective"])
def test_gradient_checkpointing_gives_the_same_views_and_gradients_and_recomputes_in_backward(noise_source, mode):
    x = torch.rand(2, 3, 16, 16)
    upstream = torch.randn(2, 3, 16, 16)
    runs = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = ViewmakerModel(ViewmakerConfig(num_res_blocks=2))
        if checkpointing:
            kwargs = {"use_reentrant": False}
            if mode == "selective":
                kwargs["context_fn"] = convolution_saving_checkpoint_context
            # transformers 5.x renamed it activation checkpointing; `gradient_checkpointing_enable` is the older alias.
            getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)(kwargs)
        saved_bytes = []
        torch.manual_seed(1)
        generator = torch.Generator().manual_seed(7) if noise_source == "generator" else None
        with torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved_bytes.append(t.numel() * t.element_size()) or t,  # noqa: B023 (used in this iteration)
            lambda t: t,
        ):
            views = model(x, generator=generator).views
        with _OpCounter() as backward_ops:  # the recomputation draws nothing: the noise was drawn before it
            (views * upstream).sum().backward()
        runs.append((views.detach(), [p.grad for p in model.parameters()], sum(saved_bytes), backward_ops.counts))
    (plain_views, plain_grads, plain_bytes, plain_ops), (views, grads, checkpointed_bytes, ops) = runs
    torch.testing.assert_close(views, plain_views, rtol=0, atol=0)
    for grad, plain_grad in zip(grads, plain_grads):
        torch.testing.assert_close(grad, plain_grad, rtol=1e-5, atol=1e-7)
    # Only the network's input and noise are kept in the autograd graph; the rest is recomputed in backward ...
    assert checkpointed_bytes < 0.05 * plain_bytes, (checkpointed_bytes, plain_bytes)
    convolution, padding = torch.ops.aten.convolution.default, torch.ops.aten.reflection_pad2d.default
    assert plain_ops[convolution] == plain_ops[padding] == 0
    assert ops[padding] == 10  # ... the padding of each of the 10 convolutions (their weight gradients need it) ...
    # ... and, in full, the convolutions themselves (the last one's output is not needed, so it may be skipped)
    assert ops[convolution] >= 9 if mode == "full" else ops[convolution] == 0


def test_default_pytorch_init_is_kept():
    model = ViewmakerModel(ViewmakerConfig())
    weight = model.res1.conv1.conv2d.weight
    fan_in = weight[0].numel()
    # PyTorch's kaiming_uniform(a=sqrt(5)) has std 1/sqrt(3 fan_in); transformers' generic init would give 0.02.
    assert weight.std().item() == pytest.approx((3 * fan_in) ** -0.5, rel=0.05)
    assert model.in1.weight.eq(1).all() and model.in1.bias.eq(0).all()


def test_save_and_load_with_auto_classes(tmp_path):
    model = ViewmakerModel(ViewmakerConfig(num_channels=1, num_res_blocks=2, clamp=False, distortion_budget=0.1))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), ViewmakerConfig)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, ViewmakerModel)
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), name
    x = torch.randn(2, 1, 16, 20)
    torch.testing.assert_close(
        model(x, generator=torch.Generator().manual_seed(3)).views,
        loaded(x, generator=torch.Generator().manual_seed(3)).views,
    )


@pytest.mark.parametrize(
    "shape,message",
    [
        ((2, 1, 16, 16), "1 channels"),
        ((2, 3, 16), "shape"),
        ((2, 3, 4, 16), "too small"),
    ],
)
def test_bad_input_shapes_are_named(shape, message):
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=0))
    with pytest.raises(ValueError, match=message):
        model(torch.rand(shape))


def test_non_finite_input_is_rejected():
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=0))
    x = torch.rand(2, 3, 8, 8)
    x[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(x)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"activation": "gelu"}, "activation"),
        ({"budget_norm": "l3"}, "budget_norm"),
        ({"num_res_blocks": 6}, "num_res_blocks"),
        ({"distortion_budget": 0.0}, "distortion_budget"),
        ({"distortion_budget": float("inf")}, "distortion_budget"),
        ({"spatial_dims": 3}, "spatial_dims"),
        ({"downsample_to": [8, 8, 8]}, "downsample_to"),
    ],
)
def test_invalid_config_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ViewmakerConfig(**kwargs)


def test_an_integer_budget_is_that_float():
    config = ViewmakerConfig(distortion_budget=1)
    assert config.distortion_budget == 1.0 and isinstance(config.distortion_budget, float)


@pytest.mark.parametrize(
    ("inputs", "error", "message"),
    [
        (torch.rand(2, 3, 8, 8).numpy(), TypeError, "torch.Tensor .*ndarray"),
        ([[0.5]], TypeError, "torch.Tensor .*list"),
        ((torch.rand(2, 3, 8, 8) * 255).to(torch.uint8), TypeError, "floating point, got torch.uint8.*/ 255"),
        (torch.rand(0, 3, 8, 8), ValueError, "empty batch"),
        (torch.rand(2, 3, 8, 8) * 255, ValueError, r"ranges over \[.*, .*\], but clamp=True"),
    ],
    ids=["numpy", "list", "uint8", "empty", "0-255"],
)
def test_inputs_it_cannot_make_views_of_are_named(inputs, error, message):
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=0))
    with pytest.raises(error, match=message):
        model(inputs)


def test_unclamped_viewmakers_take_inputs_of_any_range():
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=0, clamp=False))
    assert model(torch.randn(2, 3, 8, 8) * 50).views.shape == (2, 3, 8, 8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_floating_inputs_of_any_precision_give_views_of_their_dtype(dtype):
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=1)).eval()
    x = torch.rand(2, 3, 12, 12)
    reference = model(x, generator=torch.Generator().manual_seed(0)).views
    views = model(x.to(dtype), generator=torch.Generator().manual_seed(0)).views
    assert views.dtype == dtype
    torch.testing.assert_close(views.float(), reference, atol=2e-2, rtol=0)


def test_a_downsampled_perturbation_stays_within_the_budget_at_full_size():
    """The budget holds where the network runs (16x16); upsampled to 32x32 the perturbation is smoother, its mean
    magnitude a little below the budget and never above (documented in `ViewmakerConfig.downsample_to`)."""
    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=1, downsample_to=16, clamp=False)).eval()
    perturbation = model(torch.rand(8, 3, 32, 32), generator=torch.Generator().manual_seed(0)).perturbation
    magnitude = perturbation.abs().mean(dim=(1, 2, 3))
    assert bool((magnitude <= 0.05 + 1e-6).all()) and bool((magnitude >= 0.8 * 0.05).all()), magnitude


@pytest.mark.parametrize("part", ["viewmaker", "encoder"])
def test_damaged_weights_are_refused_naming_the_folder(tmp_path, part):
    from safetensors.torch import save_file

    from hf_viewmaker import ContrastiveResNetConfig, ContrastiveResNetModel

    model_class, config = {
        "viewmaker": (ViewmakerModel, ViewmakerConfig(num_res_blocks=0)),
        "encoder": (ContrastiveResNetModel, ContrastiveResNetConfig(depths=[1], hidden_sizes=[8], stem_channels=8)),
    }[part]
    model_class(config).save_pretrained(tmp_path / "good")
    weights = (tmp_path / "good" / "model.safetensors").read_bytes()
    for name in ("truncated", "nan"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_bytes((tmp_path / "good" / "config.json").read_bytes())
    (tmp_path / "truncated" / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    state = load_file(tmp_path / "good" / "model.safetensors")
    first = next(name for name, tensor in state.items() if tensor.is_floating_point())
    state[first] = torch.full_like(state[first], float("nan"))
    save_file(state, tmp_path / "nan" / "model.safetensors", metadata={"format": "pt"})

    with pytest.raises(OSError, match="truncated.*cannot be read"):
        AutoModel.from_pretrained(tmp_path / "truncated")
    with pytest.raises(ValueError, match=f"nan hold NaN or inf values: {first}"):
        model_class.from_pretrained(tmp_path / "nan")
    assert isinstance(AutoModel.from_pretrained(tmp_path / "good"), model_class)


def test_a_clamping_viewmaker_given_z_scored_inputs_warns_instead_of_refusing(caplog):
    """Spectrogram viewmakers saved when --clamp_views defaulted to true were clamped in training too: they still
    make views of their inputs, with a warning (0-255 images, all non-negative, remain an error)."""
    import logging

    model = ViewmakerModel(ViewmakerConfig(num_res_blocks=0))
    with caplog.at_level(logging.WARNING):
        model(torch.randn(2, 3, 8, 8))
        model(torch.randn(2, 3, 8, 8))
    assert caplog.text.count("clamps its views to [0, 1]") == 1
