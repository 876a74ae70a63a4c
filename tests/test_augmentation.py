"""`ViewmakerAugmentation`: a trained viewmaker as an augmentation for a tensor pipeline, a `datasets` transform and a
`Trainer` collator, loaded from a run folder, a viewmaker folder or the Hub (the test server of tests/hub_server.py);
and examples/trainer_with_viewmaker_augmentation.py end to end."""

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, Features, Image, Value
from huggingface_hub import HfApi
from PIL import Image as PILImage
from safetensors.torch import load_file
from torch import nn
from transformers import AutoModelForImageClassification

from hf_viewmaker import ContrastiveResNetConfig, ViewmakerConfig, ViewmakerImageProcessor, ViewmakerModel
from hf_viewmaker.augmentation import ViewmakerAugmentation, ViewmakerCollator, ViewmakerDatasetTransform

from helpers import run_python
from hub_server import HubServer, point_this_process_at

pytestmark = pytest.mark.usefixtures("one_thread")

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "trainer_with_viewmaker_augmentation.py"
TOKEN = "hf_alicesWriteToken0123456789abcdefXYZ"
SIZE = 16
MEAN, STD = [0.286], [0.353]


def _viewmaker(seed: int = 0, **config) -> ViewmakerModel:
    torch.manual_seed(seed)
    return ViewmakerModel(ViewmakerConfig(**{"num_channels": 1, "num_res_blocks": 1, **config}))


def _processor(**kwargs) -> ViewmakerImageProcessor:
    return ViewmakerImageProcessor(
        num_channels=1, size={"height": SIZE, "width": SIZE}, image_mean=MEAN, image_std=STD, **kwargs
    )


def _images(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _save_viewmaker(folder: Path, **config) -> ViewmakerModel:
    viewmaker = _viewmaker(**config)
    viewmaker.save_pretrained(folder)
    _processor().save_pretrained(folder)
    return viewmaker


def _save_encoder_config(folder: Path) -> None:
    """What a published repository holds at its root: the encoder's config (its weights do not matter here)."""
    ContrastiveResNetConfig(num_channels=1, stem_channels=8, depths=[1], hidden_sizes=[8]).save_pretrained(folder)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ---- the augmentation on tensors ----


@pytest.mark.parametrize(
    "config, shape",
    [({}, (3, 1, SIZE, 12)), ({"spatial_dims": 1, "num_channels": 3, "clamp": False}, (2, 3, 40))],
    ids=["images", "1-d"],
)
def test_views_keep_the_shape_dtype_and_device(config, shape):
    augmentation = ViewmakerAugmentation(_viewmaker(**config))
    inputs = torch.rand(shape)
    views = augmentation(inputs)
    assert views.shape == inputs.shape and views.dtype == inputs.dtype and views.device == inputs.device
    assert not torch.equal(views, inputs)
    assert augmentation.expected_shape == ("[batch, 3, time]" if config else "[batch, 1, height, width]")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_are_computed_in_the_viewmakers_dtype_and_cast_back(dtype):
    augmentation = ViewmakerAugmentation(_viewmaker())
    inputs = _images().to(dtype)
    views = augmentation(inputs, generator=_seeded())
    assert views.dtype == dtype
    assert augmentation.viewmaker.dtype == torch.float32  # the model was not converted
    # The float32 views of the same (rounded) inputs, rounded to the batch's precision.
    expected = augmentation(inputs.float(), generator=_seeded()).to(dtype)
    torch.testing.assert_close(views, expected, rtol=0, atol=0)


def test_an_enclosing_autocast_does_not_change_the_views():
    augmentation = ViewmakerAugmentation(_viewmaker())
    inputs = _images()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = augmentation(inputs, generator=_seeded())
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, augmentation(inputs, generator=_seeded()), rtol=0, atol=0)


def test_no_gradients_eval_mode_and_frozen_parameters_also_inside_a_model_that_trains():
    viewmaker = _viewmaker().train()
    augmentation = ViewmakerAugmentation(viewmaker)
    assert augmentation.viewmaker is viewmaker and not viewmaker.training
    assert not any(p.requires_grad for p in augmentation.parameters())

    model = nn.Sequential(augmentation, nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(1))
    model.train()
    assert augmentation.training and not viewmaker.training  # only the module's flag follows the model
    inputs = _images().requires_grad_(True)
    views = augmentation(inputs)
    assert not views.requires_grad and views.grad_fn is None
    # Even with the viewmaker's parameters unfrozen and handed to the optimizer, a training step leaves them alone:
    # no graph is recorded through the viewmaker, so they get no gradient (and AdamW skips them, decay included).
    model(_images()).sum()  # materialise the lazy layer
    model.requires_grad_(True)
    before = {k: v.clone() for k, v in viewmaker.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    model(_images()).sum().backward()
    optimizer.step()
    assert model[1].weight.grad is not None
    assert all(p.grad is None for p in viewmaker.parameters())
    assert all(torch.equal(before[k], v) for k, v in viewmaker.state_dict().items())


def test_a_generator_gives_reproducible_views_and_leaves_the_global_rng_alone():
    augmentation = ViewmakerAugmentation(_viewmaker())
    inputs = _images()
    state = torch.get_rng_state()
    first = augmentation(inputs, generator=_seeded(7))
    second = augmentation(inputs, generator=_seeded(7))
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.equal(first, augmentation(inputs, generator=_seeded(8)))
    # Without one: fresh noise from the global RNG at every call.
    assert not torch.equal(augmentation(inputs), augmentation(inputs))
    assert not torch.equal(torch.get_rng_state(), state)


def test_the_budget_sets_the_perturbation_size_at_construction_and_per_call():
    # A non-clamping L1 viewmaker: mean |view - input| per example is the budget (up to the original's 1e-4 epsilon).
    viewmaker = _viewmaker(clamp=False, distortion_budget=0.05)
    inputs = _images()

    def l1(augmentation, **kwargs) -> torch.Tensor:
        return (augmentation(inputs, generator=_seeded(), **kwargs) - inputs).abs().mean(dim=(1, 2, 3))

    default = ViewmakerAugmentation(viewmaker)
    assert default.distortion_budget == 0.05
    torch.testing.assert_close(l1(default), torch.full((4,), 0.05), rtol=1e-2, atol=0)
    torch.testing.assert_close(l1(default, distortion_budget=0.2), torch.full((4,), 0.2), rtol=1e-2, atol=0)
    constructed = ViewmakerAugmentation(viewmaker, distortion_budget=0.1)
    assert constructed.distortion_budget == 0.1
    torch.testing.assert_close(l1(constructed), torch.full((4,), 0.1), rtol=1e-2, atol=0)
    torch.testing.assert_close(l1(constructed, distortion_budget=0.01), torch.full((4,), 0.01), rtol=1e-2, atol=0)
    assert viewmaker.config.distortion_budget == 0.05  # the config is not touched

    for bad in (0, -0.1, math.inf, math.nan, True, "0.1"):
        with pytest.raises(ValueError, match="distortion_budget must be a positive finite number"):
            ViewmakerAugmentation(viewmaker, distortion_budget=bad)
        with pytest.raises(ValueError, match="distortion_budget must be a positive finite number"):
            default(inputs, distortion_budget=bad)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (
            [[0.5] * SIZE] * SIZE,
            r"pixel_values must be a torch.Tensor of shape \[batch, 1, height, width\], got a list",
        ),
        (np.zeros((2, 1, SIZE, SIZE), np.float32), r"torch.Tensor of shape \[batch, 1, height, width\], got a ndarray"),
        (torch.rand(1, SIZE, SIZE), r"must have shape \[batch, 1, height, width\], got shape \(1, 16, 16\): a single"),
        (torch.rand(2, 3, SIZE, SIZE), r"got shape \(2, 3, 16, 16\): 3 channels, but this viewmaker was built for"),
        (torch.rand(0, 1, SIZE, SIZE), r"empty batch"),
        (torch.zeros(2, 1, SIZE, SIZE, dtype=torch.uint8), r"floating point, got torch.uint8: images are \[0, 1\]"),
    ],
    ids=["list", "ndarray", "one-example", "channels", "empty", "uint8"],
)
def test_bad_inputs_are_refused_before_any_work(inputs, message, monkeypatch):
    augmentation = ViewmakerAugmentation(_viewmaker())
    calls = []
    augmentation.viewmaker.register_forward_pre_hook(lambda *args: calls.append("forward"))
    monkeypatch.setattr(augmentation.viewmaker, "to", lambda *args, **kwargs: calls.append("to"))
    with pytest.raises(ValueError, match=message):
        augmentation(inputs)
    assert calls == []


def test_the_viewmaker_moves_to_the_batchs_device_once(monkeypatch):
    # Only a CPU here: the viewmaker is made to report another device, and its `.to` is recorded.
    augmentation = ViewmakerAugmentation(_viewmaker())
    reported = {"device": torch.device("meta")}
    moves = []

    def move(device):
        moves.append(device)
        reported["device"] = torch.device(device)

    monkeypatch.setattr(ViewmakerModel, "device", property(lambda self: reported["device"]))
    monkeypatch.setattr(augmentation.viewmaker, "to", move)
    for _ in range(3):
        augmentation(_images())
    assert moves == [torch.device("cpu")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_views_generator_and_collator_device():
    augmentation = ViewmakerAugmentation(_viewmaker())
    inputs = _images().cuda()
    views = augmentation(inputs, generator=torch.Generator(device="cuda").manual_seed(0))
    assert views.device == inputs.device and augmentation.viewmaker.device == inputs.device
    with pytest.raises(ValueError, match="generator is on cpu but pixel_values is on cuda"):
        augmentation(inputs, generator=_seeded())
    batch = augmentation.collator(device="cuda")([{"pixel_values": x} for x in _images()])
    assert batch["pixel_values"].device.type == "cpu"  # back where the DataLoader can pin it


# ---- from_pretrained ----


def test_from_a_run_folder_its_viewmaker_folder_and_an_explicit_subfolder(tmp_path):
    run = tmp_path / "run"
    saved = _save_viewmaker(run / "viewmaker")
    _save_encoder_config(run / "encoder")
    for where, kwargs in ((run, {}), (run / "viewmaker", {}), (run, {"subfolder": "viewmaker"}), (str(run), {})):
        augmentation = ViewmakerAugmentation.from_pretrained(where, **kwargs)
        assert _same_weights(augmentation.viewmaker, saved)
        assert isinstance(augmentation.processor, ViewmakerImageProcessor)
        assert list(augmentation.processor.image_mean) == MEAN and not augmentation.processor.do_normalize
        assert not augmentation.viewmaker.training and augmentation.distortion_budget == 0.05
    assert ViewmakerAugmentation.from_pretrained(run, distortion_budget=0.2).distortion_budget == 0.2


def test_from_a_published_layout_folder_and_clear_errors(tmp_path):
    published = tmp_path / "published"
    saved = _save_viewmaker(published / "viewmaker")
    _save_encoder_config(published)  # the encoder at the root: not a viewmaker, so viewmaker/ is used
    assert _same_weights(ViewmakerAugmentation.from_pretrained(published).viewmaker, saved)

    encoder_only = tmp_path / "encoder_only"
    _save_encoder_config(encoder_only)
    with pytest.raises(ValueError, match="no viewmaker in") as error:
        ViewmakerAugmentation.from_pretrained(encoder_only)
    assert f"{encoder_only}/config.json is a 'contrastive_resnet' config, not a 'viewmaker' one" in str(error.value)
    assert f"{encoder_only}/viewmaker/config.json does not exist" in str(error.value)
    with pytest.raises(ValueError, match=r"published/config.json is a 'contrastive_resnet' config"):
        ViewmakerAugmentation.from_pretrained(published, subfolder="")

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/config.json does not exist; .*empty/viewmaker/config.json"):
        ViewmakerAugmentation.from_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ViewmakerAugmentation.from_pretrained(tmp_path / "no" / "such" / "folder")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ViewmakerAugmentation.from_pretrained(published / "config.json")


def test_from_the_hub_with_a_revision(tmp_path, monkeypatch):
    main_folder, branch_folder = tmp_path / "main", tmp_path / "branch"
    on_main = _save_viewmaker(main_folder / "viewmaker")
    _save_encoder_config(main_folder)
    on_branch = _save_viewmaker(branch_folder / "viewmaker", distortion_budget=0.2)
    with HubServer(tokens={TOKEN: "alice"}) as hub:
        point_this_process_at(hub, monkeypatch, tmp_path / "hf_home", TOKEN)
        api = HfApi()
        api.create_repo("alice/tiny-run")
        api.upload_folder(repo_id="alice/tiny-run", folder_path=main_folder)
        api.create_branch("alice/tiny-run", branch="budget-0.2")
        api.upload_folder(repo_id="alice/tiny-run", folder_path=branch_folder, revision="budget-0.2")
        api.create_repo("alice/encoder-only")
        api.upload_folder(repo_id="alice/encoder-only", folder_path=main_folder, ignore_patterns=["viewmaker/*"])

        from_main = ViewmakerAugmentation.from_pretrained("alice/tiny-run")
        from_branch = ViewmakerAugmentation.from_pretrained("alice/tiny-run", revision="budget-0.2")
        assert _same_weights(from_main.viewmaker, on_main) and from_main.distortion_budget == 0.05
        assert _same_weights(from_branch.viewmaker, on_branch) and from_branch.distortion_budget == 0.2
        assert list(from_branch.processor.image_mean) == MEAN
        with pytest.raises(ValueError, match=r"no viewmaker in alice/encoder-only: .*viewmaker/config.json does not"):
            ViewmakerAugmentation.from_pretrained("alice/encoder-only")
        # The branch was asked for by name (then its files by the commit it resolved to).
        assert "/alice/tiny-run/resolve/budget-0.2/viewmaker/config.json" in {path for _, path in hub.requests}


# ---- the datasets transform ----


def test_dataset_transform_of_a_pixel_values_column():
    augmentation = ViewmakerAugmentation(_viewmaker())
    clean = _images(6)
    dataset = Dataset.from_dict({"pixel_values": clean.numpy().tolist(), "label": list(range(6))})
    augmented = dataset.with_transform(augmentation.dataset_transform(generator=_seeded()))
    rows = augmented[0:4]
    assert rows["label"] == [0, 1, 2, 3]
    views = torch.stack(rows["pixel_values"])
    torch.testing.assert_close(views, augmentation(clean[:4], generator=_seeded()), rtol=0, atol=0)
    assert augmented[0]["pixel_values"].shape == (1, SIZE, SIZE)

    # A DataLoader asks for whole batches (one viewmaker call each) and gets new views every epoch.
    loader = torch.utils.data.DataLoader(augmented, batch_size=3)
    epochs = [torch.cat([batch["pixel_values"] for batch in loader]) for _ in range(2)]
    assert epochs[0].shape == clean.shape and not torch.equal(epochs[0], epochs[1])

    # Another output key keeps the clean input; then_normalize normalises the views only; stacked tensors stay so.
    transform = augmentation.dataset_transform(output_key="view", then_normalize=(MEAN, STD), generator=_seeded())
    out = transform({"pixel_values": clean[:2], "label": [0, 1]})
    assert torch.equal(out["pixel_values"], clean[:2])
    expected = (augmentation(clean[:2], generator=_seeded()) - MEAN[0]) / STD[0]
    torch.testing.assert_close(out["view"], expected)
    assert isinstance(pickle.loads(pickle.dumps(transform)), ViewmakerDatasetTransform)  # for spawned workers


def test_dataset_transform_of_images_with_the_viewmakers_processor(tmp_path):
    folder = tmp_path / "viewmaker"
    _save_viewmaker(folder)
    augmentation = ViewmakerAugmentation.from_pretrained(folder)
    rng = np.random.default_rng(0)
    images = [PILImage.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8), mode="L") for _ in range(3)]
    dataset = Dataset.from_dict(
        {"image": images, "label": [0, 1, 0]}, features=Features({"image": Image(), "label": Value("int64")})
    )
    augmented = dataset.with_transform(augmentation.dataset_transform(image_key="image", generator=_seeded()))
    rows = augmented[:]
    assert sorted(rows) == ["label", "pixel_values"]  # the images are replaced by their views
    clean = _processor()(images, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(torch.stack(rows["pixel_values"]), augmentation(clean, generator=_seeded()))

    with pytest.raises(ValueError, match="do_normalize=True"):
        augmentation.dataset_transform(image_key="image", processor=_processor(do_normalize=True))
    with pytest.raises(ValueError, match="image_key='image' needs a processor"):
        ViewmakerAugmentation(_viewmaker()).dataset_transform(image_key="image")
    with pytest.raises(ValueError, match="processor= is used with image_key="):
        augmentation.dataset_transform(processor=_processor())
    with pytest.raises(ValueError, match="one mean and one std per channel"):
        augmentation.dataset_transform(then_normalize=([0.5] * 3, [0.2] * 3))


def test_dataset_transform_errors_name_the_column_and_shapes():
    transform = ViewmakerAugmentation(_viewmaker()).dataset_transform()
    with pytest.raises(ValueError, match=r"the batch has no 'pixel_values' column \(it has \['image'\]\)"):
        transform({"image": [1]})
    with pytest.raises(ValueError, match=r"different shapes \[\(1, 16, 16\), \(1, 16, 20\)\]"):
        transform({"pixel_values": [torch.rand(1, SIZE, SIZE), torch.rand(1, SIZE, 20)]})
    with pytest.raises(ValueError, match=r"batch\['pixel_values'\] must be a stacked tensor or a non-empty list"):
        transform({"pixel_values": []})


# ---- the collator ----


def test_collator_makes_normalised_views_for_training_and_only_normalises_for_evaluation():
    augmentation = ViewmakerAugmentation(_viewmaker())
    clean = _images(4)
    features = [{"pixel_values": x, "label": i} for i, x in enumerate(clean)]
    collator = augmentation.collator(then_normalize=_processor(), generator=_seeded())
    assert isinstance(collator, ViewmakerCollator) and collator.training

    batch = collator(features)
    assert batch["labels"].tolist() == [0, 1, 2, 3]  # default_data_collator's batch, otherwise as it was
    expected = (augmentation(clean, generator=_seeded()) - MEAN[0]) / STD[0]
    torch.testing.assert_close(batch["pixel_values"], expected)

    evaluation = collator.for_evaluation()
    assert not evaluation.training and collator.training
    torch.testing.assert_close(evaluation(features)["pixel_values"], (clean - MEAN[0]) / STD[0], rtol=0, atol=0)

    two_keys = augmentation.collator(output_key="views", device="cpu", generator=_seeded())(features)
    assert torch.equal(two_keys["pixel_values"], clean)
    torch.testing.assert_close(two_keys["views"], augmentation(clean, generator=_seeded()))

    with pytest.raises(ValueError, match=r"the collated batch has no 'image' \(it has \['labels', 'pixel_values'\]\)"):
        augmentation.collator(input_key="image")(features)
    with pytest.raises(ValueError, match=r"batch\['pixel_values'\] must have shape \[batch, 1, height, width\]"):
        collator([{"pixel_values": torch.rand(3, SIZE, SIZE)}])
    with pytest.raises(ValueError, match="then_normalize must be"):
        augmentation.collator(then_normalize="imagenet")


# ---- examples/trainer_with_viewmaker_augmentation.py ----

# The example run as a script (`__main__`), with two recorders: what the collator returned (and how far that is from
# the clean, normalised batch), and what the model was given in each Trainer loss computation.
RUN_THE_EXAMPLE_WITH_RECORDERS = """
import json, runpy
from transformers import Trainer
from hf_viewmaker.augmentation import ViewmakerCollator
from hf_viewmaker.processing.image_processing_viewmaker import normalize_channels

example, records_file, *args = sys.argv[1:]
records = {"collated": [], "model_inputs": []}
collate = ViewmakerCollator.__call__

def recording_collate(self, features):
    batch = collate(self, features)
    clean = normalize_channels(self.base_collator(features)[self.input_key], *self.normalization)
    out = batch[self.output_key]
    records["collated"].append(
        {"training": self.training, "l1": (out - clean).abs().mean().item(), "checksum": out.double().sum().item()}
    )
    return batch

compute_loss = Trainer.compute_loss

def recording_compute_loss(self, model, inputs, *rest, **kwargs):
    records["model_inputs"].append({"training": model.training, "checksum": inputs["pixel_values"].double().sum().item()})
    return compute_loss(self, model, inputs, *rest, **kwargs)

ViewmakerCollator.__call__ = recording_collate
Trainer.compute_loss = recording_compute_loss
sys.argv = [example, *args]
runpy.run_path(example, run_name="__main__")
with open(records_file, "w") as f:
    json.dump(records, f)
"""


def test_the_trainer_example_trains_on_views_and_evaluates_on_clean_images(tmp_path):
    run = tmp_path / "run"
    _save_viewmaker(run / "viewmaker")  # clamp=True, budget 0.05: an image viewmaker
    _save_encoder_config(run / "encoder")
    output_dir, records_file = tmp_path / "classifier", tmp_path / "records.json"
    max_steps = 3
    args = [
        "--viewmaker", run, "--output_dir", output_dir, "--max_steps", max_steps, "--logging_steps", 1,
        "--per_device_train_batch_size", 8, "--per_device_eval_batch_size", 16, "--max_train_samples", 32,
        "--max_eval_samples", 24, "--hidden_size", 16, "--num_hidden_layers", 1, "--num_attention_heads", 2,
        "--use_cpu",
    ]  # fmt: skip
    printed = run_python(
        RUN_THE_EXAMPLE_WITH_RECORDERS,
        EXAMPLE,
        records_file,
        *args,
        cwd=tmp_path,
        env={"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"},
        with_package=True,
    )
    summary = json.loads(printed.strip().splitlines()[-1])
    assert math.isfinite(summary["train_loss"]) and 0 <= summary["eval_accuracy"] <= 1

    # It trained: a loss at every step, all finite; the classifier and its (normalising) processor were saved.
    state = json.loads((output_dir / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == max_steps and all(math.isfinite(loss) for loss in losses)
    assert all(torch.isfinite(t).all() for t in load_file(output_dir / "model.safetensors").values())
    classifier = AutoModelForImageClassification.from_pretrained(output_dir)
    assert classifier.config.num_channels == 1 and classifier.config.image_size == [SIZE, SIZE]
    saved_processor = json.loads((output_dir / "preprocessor_config.json").read_text())
    assert saved_processor["do_normalize"] and saved_processor["image_mean"] == MEAN

    # The model trained on views: every training batch it was given is one the collator made views of, and those
    # are far from the clean, normalised batches (a perturbation of mean <= 0.05 / 0.353 after normalising).
    records = json.loads(records_file.read_text())
    trained_on = [r["checksum"] for r in records["model_inputs"] if r["training"]]
    view_batches = [r for r in records["collated"] if r["training"]]
    assert len(trained_on) == max_steps
    for checksum in trained_on:
        assert any(math.isclose(checksum, r["checksum"], rel_tol=1e-9) for r in view_batches)
    assert all(0.02 < r["l1"] <= 0.05 / STD[0] + 1e-6 for r in view_batches)
    # ... and it was evaluated on clean images: the evaluation batches (24 images, 2 batches) got no views.
    evaluated_on = [r["checksum"] for r in records["model_inputs"] if not r["training"]]
    clean_batches = [r for r in records["collated"] if not r["training"]]
    assert len(evaluated_on) == len(clean_batches) == 2
    assert all(r["l1"] == 0 for r in clean_batches)
    for checksum in evaluated_on:
        assert any(math.isclose(checksum, r["checksum"], rel_tol=1e-9) for r in clean_batches)
