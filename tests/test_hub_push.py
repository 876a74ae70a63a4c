"""`hf-viewmaker push` end to end, against the Hub-compatible server of tests/hub_server.py on 127.0.0.1.

A real run of training/pretrain.py is pushed with the CLI, in the published layout (the encoder at the root, the
viewmaker in viewmaker/), and loaded back from the server with `AutoModel` / `AutoImageProcessor` /
`pipeline("image-feature-extraction")` and `trust_remote_code=True` in a fresh Python, with and without
hf_viewmaker; its outputs must equal the local models' exactly.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import RepositoryNotFoundError
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification

from hf_viewmaker import ContrastiveResNetBackbone  # importing hf_viewmaker registers the Auto classes
from hf_viewmaker.cli import main
from hf_viewmaker.hub import HubPushError, IncompleteRunError, collect_run_files, push_run_to_hub

from helpers import RUN_A_CARD_SNIPPET, TINY_MODEL, card_snippet, hub_environment, run_python
from hub_server import HubServer, point_this_process_at

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_alicesWriteToken0123456789abcdefXYZ"
OTHER_TOKEN = "hf_bobsWriteToken0123456789abcdefXYZ"
WRONG_TOKEN = "hf_notAValidToken0123456789abcdefXYZ"
# The quickstart recipe, shrunk to seconds (as tests/test_pretrain.py).
TINY_RUN = [
    "--config",
    str(REPO_ROOT / "training" / "configs" / "quickstart.yaml"),
    "--max_steps",
    "2",
    "--max_train_samples",
    "64",
    "--max_eval_samples",
    "32",
    "--knn_max_train_samples",
    "64",
    "--per_device_train_batch_size",
    "16",
    *TINY_MODEL,
    "--report_to",
    "none",
]
MODEL_CARD = """---
library_name: transformers
tags:
- viewmaker
- contrastive-learning
---

# A tiny viewmaker run
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """What training/pretrain.py writes, plus a model card, eval results and a hidden scratch folder."""
    output_dir = tmp_path_factory.mktemp("run") / "output"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / "pretrain.py"), *TINY_RUN, "--output_dir", str(output_dir)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (output_dir / "checkpoints").is_dir()  # so that leaving it out is tested
    (output_dir / "README.md").write_text(MODEL_CARD)
    (output_dir / "eval_results.json").write_text(json.dumps({"knn_accuracy": 0.5}))
    (output_dir / ".partial-encoder-123").mkdir()
    (output_dir / ".partial-encoder-123" / "model.safetensors").write_bytes(b"half written")
    (output_dir / "encoder" / ".DS_Store").write_bytes(b"not part of the model")
    return output_dir


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The server, and this process pointed at it, online, with alice's token in HF_TOKEN."""
    with HubServer(tokens={TOKEN: "alice", OTHER_TOKEN: "bob"}) as server:
        point_this_process_at(server, monkeypatch, tmp_path / "hf_home", TOKEN)
        yield server


def _push(run: Path, *args: str) -> int:
    return main(["push", str(run), *args])


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints")))


# Run in a fresh Python, with or without the package: every model and processor of the published repository, as a
# Hub visitor loads them (the encoder from the root, the viewmaker from viewmaker/), and the image-feature-extraction
# pipeline on images, and the encoder as a backbone.
LOAD_FROM_THE_HUB = """
import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoBackbone, AutoImageProcessor, AutoModel, pipeline

repo_id, inputs_file, outputs_file = sys.argv[1:]
packaged = "hf_viewmaker" in sys.modules
inputs = load_file(inputs_file)["inputs"]
outputs = {}
for part, where in (("encoder", {}), ("viewmaker", {"subfolder": "viewmaker"})):
    model = AutoModel.from_pretrained(repo_id, **where, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(repo_id, **where, trust_remote_code=True)
    for loaded in (model, processor):
        module = type(loaded).__module__
        assert module.startswith("hf_viewmaker." if packaged else "transformers_modules."), module
    kwargs = {"generator": torch.Generator().manual_seed(0)} if part == "viewmaker" else {}
    with torch.no_grad():
        for i, tensor in enumerate(model(inputs, **kwargs).to_tuple()):
            outputs[f"{part}.{i}"] = tensor.contiguous()
rng = np.random.default_rng(0)
images = [Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8), mode="L") for _ in range(3)]
extractor = pipeline("image-feature-extraction", model=repo_id, trust_remote_code=True)
outputs["pipeline"] = torch.cat(extractor(images, pool=True, return_tensors=True))
backbone = AutoBackbone.from_pretrained(repo_id, trust_remote_code=True).eval()
with torch.no_grad():
    outputs["backbone"] = backbone(inputs).feature_maps[-1]
save_file(outputs, outputs_file)
"""


def _local_outputs(run: Path, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the package computes from the run folder for LOAD_FROM_THE_HUB's inputs."""
    outputs = {}
    for part in ("encoder", "viewmaker"):
        model = AutoModel.from_pretrained(run / part).eval()
        assert type(model).__module__.startswith("hf_viewmaker."), type(model).__module__
        kwargs = {"generator": torch.Generator().manual_seed(0)} if part == "viewmaker" else {}
        with torch.no_grad():
            for i, tensor in enumerate(model(inputs, **kwargs).to_tuple()):
                outputs[f"{part}.{i}"] = tensor
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8), mode="L") for _ in range(3)]
    processor, encoder = AutoImageProcessor.from_pretrained(run / "encoder"), AutoModel.from_pretrained(run / "encoder")
    with torch.no_grad():  # one image at a time, as the pipeline encodes them
        features = [encoder.eval()(**processor(image, return_tensors="pt")).pooler_output for image in images]
    outputs["pipeline"] = torch.cat(features)
    with torch.no_grad():
        outputs["backbone"] = ContrastiveResNetBackbone.from_pretrained(run / "encoder").eval()(inputs).feature_maps[-1]
    return outputs


def _published_source(run: Path, path_in_repo: str) -> Path:
    """The file of the run folder that `path_in_repo` of the published repository holds."""
    if path_in_repo.startswith("viewmaker/"):
        return run / path_in_repo
    if (run / path_in_repo).is_file():  # README.md, views.png, the JSON files
        return run / path_in_repo
    if (run / "encoder" / path_in_repo).is_file():
        return run / "encoder" / path_in_repo
    return run / "viewmaker" / path_in_repo  # the viewmaker's code, also at the root


def test_push_then_load_from_the_hub_without_the_package(run_dir, hub, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    repo_id = "alice/tiny-viewmaker-run"

    assert _push(run_dir, "--hub_model_id", repo_id) == 0
    printed = capsys.readouterr()
    commit_url = printed.out.strip()
    head = HfApi().model_info(repo_id)
    assert commit_url == f"{hub.url}/{repo_id}/commit/{head.sha}"
    assert head.private is False
    assert hub.commit_count(repo_id) == 2  # the repository's first commit, and one commit with the whole run

    encoder_code = ["modeling_encoder.py", "configuration_encoder.py", "image_processing_viewmaker.py"]
    viewmaker_code = ["modeling_viewmaker.py", "configuration_viewmaker.py", "image_processing_viewmaker.py"]
    model_files = ["config.json", "model.safetensors", "preprocessor_config.json"]
    expected = {*model_files, *encoder_code, *viewmaker_code}  # the encoder at the root, all the code beside it
    expected |= {f"viewmaker/{name}" for name in [*model_files, *viewmaker_code]}
    expected |= {"README.md", "views.png", "training_args.json", "train_results.json", "eval_results.json"}
    remote_files = HfApi().list_repo_files(repo_id)
    assert set(remote_files) == expected
    for path, content in hub.files(repo_id).items():
        assert content == _published_source(run_dir, path).read_bytes(), path
        assert TOKEN.encode() not in content, path
    assert TOKEN not in printed.out + printed.err + caplog.text

    # Pushing the same run again changes nothing.
    assert push_run_to_hub(run_dir, repo_id) == commit_url
    assert hub.commit_count(repo_id) == 2

    _load_back_and_compare(hub, repo_id, head.sha, run_dir, tmp_path)
    _run_the_cards_snippet(hub, repo_id, run_dir, tmp_path)


def _run_the_cards_snippet(hub, repo_id: str, run_dir: Path, tmp_path: Path) -> None:
    """The card's "How to use" code, as a Hub visitor copies it: with and without the package, it gives the
    features the package gives for the same (normalised) inputs."""
    card = hub.files(repo_id)["README.md"].decode()
    assert "arxiv.org/abs/2010.07432" in card
    snippet = card_snippet(card)
    (tmp_path / "snippet.py").write_text(snippet)
    encoder = AutoModel.from_pretrained(run_dir / "encoder").eval()
    processor = AutoImageProcessor.from_pretrained(run_dir / "encoder")
    for with_package in (False, True):
        env = hub_environment(hub.url, tmp_path / f"snippet_hf_home_{with_package}")
        args = (tmp_path / "snippet.py", tmp_path / "out.st")
        run_python(RUN_A_CARD_SNIPPET, *args, cwd=tmp_path, env=env, with_package=with_package)
        remote = load_file(tmp_path / "out.st")
        torch.manual_seed(0)
        pixels = torch.rand(remote["views"].shape)
        with torch.no_grad():
            expected = encoder(processor.normalize_tensor(pixels)).pooler_output
        torch.testing.assert_close(remote["features"], expected)
        views = remote["views"]
        assert views.shape == pixels.shape and bool(((views >= 0) & (views <= 1)).all())


def _load_back_and_compare(hub, repo_id: str, sha: str, run_dir: Path, tmp_path: Path) -> None:
    """A fresh Python, an empty cache, no token, with and without hf_viewmaker: both models and their processors
    come from the server and compute what the local ones compute; so does the image-feature-extraction pipeline."""
    inputs = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    save_file({"inputs": inputs}, tmp_path / "inputs.safetensors")
    local = _local_outputs(run_dir, inputs)
    for with_package in (False, True):
        hub.requests.clear()
        env = hub_environment(hub.url, tmp_path / f"fresh_hf_home_{with_package}")
        args = (repo_id, tmp_path / "inputs.safetensors", tmp_path / "outputs.safetensors")
        run_python(LOAD_FROM_THE_HUB, *args, cwd=tmp_path, env=env, with_package=with_package)
        assert ("GET", f"/{repo_id}/resolve/{sha}/model.safetensors") in hub.requests
        remote = load_file(tmp_path / "outputs.safetensors")
        assert remote.keys() == local.keys() and len(local) >= 5
        for name in local:
            torch.testing.assert_close(remote[name], local[name], rtol=0, atol=0, msg=name)


def test_push_to_a_new_branch_of_a_private_repository(run_dir, hub, monkeypatch):
    repo_id = "alice/private-run"
    assert _push(run_dir, "--hub_model_id", repo_id, "--private", "--revision", "dev") == 0
    assert HfApi().model_info(repo_id).private is True
    assert "model.safetensors" in hub.files(repo_id, "dev")
    assert hub.files(repo_id, "main") == {}
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without the token
        HfApi().model_info(repo_id)


def test_private_push_to_an_existing_public_repository_is_refused(run_dir, hub, capsys):
    repo_id = "alice/public-run"
    HfApi().create_repo(repo_id)
    assert _push(run_dir, "--hub_model_id", repo_id, "--private") == 1
    assert "public" in capsys.readouterr().err
    assert hub.commit_count(repo_id) == 1


def test_a_wrong_token_is_a_clear_error_and_uploads_nothing(run_dir, hub, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HF_TOKEN", WRONG_TOKEN)
    assert _push(run_dir, "--hub_model_id", "alice/new-run") == 1
    printed = capsys.readouterr()
    assert "rejected the token (401" in printed.err
    assert hub.repos == {}

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    HfApi().create_repo("alice/existing-run")
    monkeypatch.setenv("HF_TOKEN", WRONG_TOKEN)
    assert _push(run_dir, "--hub_model_id", "alice/existing-run") == 1
    printed2 = capsys.readouterr()
    assert "rejected the token (401" in printed2.err
    assert hub.commit_count("alice/existing-run") == 1 and hub.files("alice/existing-run") == {}
    assert not any("/preupload/" in path or "/commit/" in path for _, path in hub.requests)

    monkeypatch.setenv("HF_TOKEN", OTHER_TOKEN)  # a valid token, but bob's
    assert _push(run_dir, "--hub_model_id", "alice/existing-run") == 1
    printed3 = capsys.readouterr()
    assert "may not write to alice/existing-run" in printed3.err and "(403 Forbidden)" in printed3.err
    assert hub.files("alice/existing-run") == {}

    everything = printed.out + printed.err + printed2.out + printed2.err + printed3.out + printed3.err + caplog.text
    for token in (WRONG_TOKEN, OTHER_TOKEN, TOKEN):
        assert token not in everything


def test_no_token_is_a_clear_error(run_dir, hub, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    assert _push(run_dir, "--hub_model_id", "alice/run") == 1
    assert "No Hugging Face token found" in capsys.readouterr().err
    assert hub.requests == []


def test_an_incomplete_run_names_what_is_missing(run_dir, hub, tmp_path, capsys):
    run = _copy_run(run_dir, tmp_path)
    (run / "encoder" / "model.safetensors").unlink()
    (run / "viewmaker" / "configuration_viewmaker.py").unlink()
    assert _push(run, "--hub_model_id", "alice/run") == 1
    err = capsys.readouterr().err
    assert "encoder/model.safetensors" in err and "viewmaker/configuration_viewmaker.py" in err
    assert hub.requests == []

    shutil.rmtree(run / "encoder")
    shutil.rmtree(run / "viewmaker")
    with pytest.raises(IncompleteRunError, match=r"holds no model: no encoder/, viewmaker/ or config.json"):
        push_run_to_hub(run, "alice/run")
    with pytest.raises(IncompleteRunError, match="does not exist"):
        collect_run_files(tmp_path / "nowhere")


def test_a_run_holding_the_token_is_not_uploaded(run_dir, hub, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    (run / "training_args.json").write_text(json.dumps({"hub_token": TOKEN}))
    with pytest.raises(HubPushError, match="training_args.json") as error:
        push_run_to_hub(run, "alice/run")
    assert TOKEN not in str(error.value)
    assert hub.repos == {}


def test_a_quickstart_model_is_evaluated_carded_pushed_and_loaded_back(run_dir, hub, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    (run / "eval_results.json").unlink()
    probe = tmp_path / "probe"
    evaluation = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "training" / "linear_eval.py"),
            "--config",
            str(REPO_ROOT / "training" / "configs" / "eval_quickstart.yaml"),
            "--model_name_or_path",
            str(run),
            "--output_dir",
            str(probe),
            "--num_train_epochs",
            "1",
            "--max_train_samples",
            "64",
            "--max_eval_samples",
            "32",
            "--per_device_train_batch_size",
            "16",
            "--report_to",
            "none",
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluation.returncode == 0, evaluation.stderr[-4000:]
    top1 = json.loads((probe / "eval_results.json").read_text())["top1_accuracy"]

    repo_id = "alice/evaluated-quickstart"
    assert _push(run, "--hub_model_id", repo_id, "--eval_results", str(probe / "eval_results.json")) == 0
    card = ModelCard(hub.files(repo_id)["README.md"].decode())
    reported = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert reported["linear probe (prepool features): top-1 accuracy"] == round(top1, 4)
    assert f'AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)' in card.text
    _load_back_and_compare(hub, repo_id, HfApi().model_info(repo_id).sha, run, tmp_path)

    # The probe publishes the same way: itself at the root, its card pointing at the run it probes.
    probe_id = "alice/quickstart-probe"
    assert _push(probe, "--hub_model_id", probe_id, "--base_model", repo_id) == 0
    published = hub.files(probe_id)
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "eval_results.json",
        "eval_args.json",
    } <= set(published)
    probe_card = ModelCard(published["README.md"].decode())
    assert probe_card.data.base_model == repo_id and probe_card.data.pipeline_tag == "image-classification"
    assert probe_card.data.eval_results[0].metric_value == round(top1, 4)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L") for _ in range(2)]
    for i, image in enumerate(images):
        image.save(tmp_path / f"image{i}.png")
    script = """
    import json
    from transformers import pipeline
    classify = pipeline("image-classification", model=sys.argv[1], trust_remote_code=True)
    print(json.dumps([classify(path, top_k=1000) for path in sys.argv[2:]]))
    """
    env = hub_environment(hub.url, tmp_path / "probe_hf_home")
    paths = [tmp_path / f"image{i}.png" for i in range(2)]
    remote = json.loads(run_python(script, probe_id, *paths, cwd=tmp_path, env=env))
    local_probe = AutoModelForImageClassification.from_pretrained(probe).eval()
    with torch.no_grad():
        logits = local_probe(**AutoImageProcessor.from_pretrained(probe)(images, return_tensors="pt")).logits
    for scores, expected in zip(remote, logits.softmax(-1)):
        by_label = {score["label"]: score["score"] for score in scores}
        labels = [local_probe.config.id2label[i] for i in range(len(expected))]
        assert [by_label[label] for label in labels] == pytest.approx(expected.tolist(), abs=1e-6)


def _silent_server():
    """A socket on 127.0.0.1 that accepts connections and never answers; `(url, close)`."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return f"http://127.0.0.1:{server.getsockname()[1]}", server.close


def _point_at(monkeypatch, url):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)
    monkeypatch.setenv("HF_ENDPOINT", url)


def test_a_hub_that_never_answers_is_an_error_naming_it_within_the_timeout(run_dir, hub, monkeypatch):
    url, close = _silent_server()
    _point_at(monkeypatch, url)
    try:
        with pytest.raises(HubPushError, match=f"the Hub at {url} did not answer .*in 2 tries"):
            push_run_to_hub(run_dir, "alice/run", timeout=0.5, tries=2)
    finally:
        close()


def test_a_refused_connection_is_a_one_line_error_and_the_local_card_is_kept(
    run_dir, hub, tmp_path, monkeypatch, capsys
):
    run = _copy_run(run_dir, tmp_path)
    card_before = (run / "README.md").read_text()
    url, close = _silent_server()
    close()  # nothing listens there any more: connections are refused
    _point_at(monkeypatch, url)
    monkeypatch.setattr("hf_viewmaker.hub.push.time.sleep", lambda seconds: None)
    assert _push(run, "--hub_model_id", "alice/elsewhere") == 1
    err = capsys.readouterr().err
    assert f"the Hub at {url} did not answer (ConnectError" in err and "Traceback" not in err
    assert (run / "README.md").read_text() == card_before  # the failed push rewrote nothing


@pytest.mark.parametrize("repo_id", ["alice/run/extra", "alice/bad name", "just-a-name"])
def test_a_bad_repository_id_is_refused_before_anything_is_sent(run_dir, hub, capsys, repo_id):
    assert _push(run_dir, "--hub_model_id", repo_id) == 1
    assert f"--hub_model_id {repo_id!r}" in capsys.readouterr().err
    assert hub.requests == []


def test_malformed_eval_results_are_named(run_dir, hub, tmp_path, capsys):
    (tmp_path / "eval_results.json").write_text("{not json")
    assert _push(run_dir, "--hub_model_id", "alice/run", "--eval_results", str(tmp_path / "eval_results.json")) == 1
    assert "eval_results.json is not valid JSON" in capsys.readouterr().err
    assert hub.repos == {}


def test_links_out_of_the_run_folder_are_never_uploaded(run_dir, hub, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    (run / "encoder" / "notes.txt").symlink_to("/etc/hostname")  # not a file of the model: never published
    assert "notes.txt" not in collect_run_files(run)
    (run / "views.png").unlink()
    (run / "views.png").symlink_to("/etc/hostname")
    with pytest.raises(HubPushError, match="links to /etc/hostname, outside"):
        push_run_to_hub(run, "alice/run")
    assert hub.repos == {}


def test_the_evaluations_a_card_reports_are_uploaded_with_it(run_dir, hub, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    (run / "eval_results.json").unlink(missing_ok=True)
    for name, accuracy in (("probe_a", 0.5), ("probe_b", 0.75)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval_results.json").write_text(json.dumps({"top1_accuracy": accuracy, "split": "test"}))
    files = [str(tmp_path / name / "eval_results.json") for name in ("probe_a", "probe_b")]
    assert _push(run, "--hub_model_id", "alice/evaluated", "--eval_results", *files) == 0
    uploaded = hub.files("alice/evaluated")
    assert json.loads(uploaded["eval_results/probe_a.json"])["top1_accuracy"] == 0.5
    assert json.loads(uploaded["eval_results/probe_b.json"])["top1_accuracy"] == 0.75
    assert "0.7500" in uploaded["README.md"].decode()  # the card reports what was uploaded beside it


def test_card_renders_the_model_card_without_pushing(run_dir, hub, tmp_path, capsys):
    run = _copy_run(run_dir, tmp_path)
    (run / "README.md").unlink()
    assert main(["card", str(run), "--hub_model_id", "alice/preview"]) == 0
    assert capsys.readouterr().out.strip() == str(run / "README.md")
    card = ModelCard.load(run / "README.md")
    assert 'AutoModel.from_pretrained("alice/preview", trust_remote_code=True)' in card.text
    assert hub.requests == []
    assert main(["card", str(tmp_path / "nothing_here")]) == 1
