"""The Space (space/app.py), tested as a person would use it: started with `python space/app.py` on 127.0.0.1 at the
port GRADIO_SERVER_PORT gives, driven with the real `gradio_client` for every kind of input and for bad files, and
opened in headless Chromium (Debian's `chromium` + `chromium-driver`, through Selenium) to check that the page renders
and shows views after the example is chosen. Screenshots go to test-artifacts/space/ (TEST_ARTIFACTS_DIR overrides).

The loading of trained viewmakers (run folders, a Hub repository) and the other pieces are tested in this process.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
import torch
from gradio_client import Client, handle_file
from huggingface_hub import HfApi
from PIL import Image

from hf_viewmaker import (
    LogMelFeatureExtractor,
    SensorSpectrogramProcessor,
    ViewmakerConfig,
    ViewmakerImageProcessor,
    ViewmakerModel,
)

from helpers import load_script
from hub_server import HubServer, point_this_process_at

REPO_ROOT = Path(__file__).resolve().parents[1]
SPACE = REPO_ROOT / "space"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO_ROOT / "test-artifacts") / "space"
STARTUP_SECONDS = 120
sys.path.insert(0, str(SPACE))
import viewmaker_space as vs  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningSpace:
    def __init__(self, url: str, upload_dir: Path, log: Path, process: subprocess.Popen):
        self.url, self.upload_dir, self.log, self.process = url, upload_dir, log, process

    def files(self) -> dict[Path, str]:
        """Every file in the server's upload / cache folder, with the SHA-256 of its content."""
        return {
            path: hashlib.sha256(path.read_bytes()).hexdigest() for path in self.upload_dir.rglob("*") if path.is_file()
        }

    def assert_no_copy_of(self, *contents: bytes) -> None:
        digests = {hashlib.sha256(content).hexdigest() for content in contents}
        kept = [str(path) for path, digest in self.files().items() if digest in digests]
        assert not kept, f"uploads left on the server: {kept}"


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """`python space/app.py` with the untrained defaults, on a free port of 127.0.0.1 given through gradio's
    environment variables; stopped at the end."""
    folder = tmp_path_factory.mktemp("space_server")
    port = _free_port()
    upload_dir = folder / "gradio"
    log = folder / "server.log"
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(upload_dir),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("VIEWMAKER_MODEL", None)
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(SPACE / "app.py")], env=env, cwd=folder, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"space/app.py exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(url + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"space/app.py did not answer within {STARTUP_SECONDS} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.25)
        yield RunningSpace(url, upload_dir, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def client(space, tmp_path_factory):
    return Client(
        space.url,
        download_files=str(tmp_path_factory.mktemp("downloads")),
        verbose=False,
        analytics_enabled=False,
    )


def _wav(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def _table(caption: str) -> np.ndarray:
    """The caption's per-view rows: mean |δ|, RMS δ, max |δ|, amplification."""
    rows = [line.split("|")[1:-1] for line in caption.splitlines() if line.startswith("| ") and line[2].isdigit()]
    return np.array([[float(cell) for cell in row[1:5]] for row in rows])


# ---------------------------------------------------------------------------------------------- the server


def test_serves_on_the_host_and_port_of_gradio_environment_variables(space):
    assert f"Running on local URL:  {space.url}" in space.log.read_text()
    config = httpx.get(space.url + "/config", timeout=10).json()
    assert config["title"] == "Viewmaker views"
    api = httpx.get(space.url + "/gradio_api/info", timeout=10).json()
    for domain in vs.DOMAINS:
        assert {f"/{domain}", f"/{domain}_views", f"/{domain}_example"} <= set(api["named_endpoints"])


@pytest.mark.parametrize("domain", vs.DOMAINS)
def test_views_of_an_upload_of_every_kind(space, client, tmp_path, domain):
    upload = vs.write_example(domain, tmp_path)
    picture, caption = client.predict(handle_file(str(upload)), 0.05, "l1", 0, 3, api_name=f"/{domain}")
    assert "3 views, budget ε = 0.05 under L1" in caption and "untrained" not in caption
    assert f"Input: {vs.EXAMPLE_NAMES[domain].replace('_', chr(92) + '_')}" in caption
    table = _table(caption)
    assert table.shape == (3, 4)
    np.testing.assert_allclose(table[:, 0], 0.05, atol=2e-4)  # L1: mean |δ| is the budget, per view
    with Image.open(picture) as grid:
        assert grid.format == "PNG"
        if domain == "image":  # three columns and three rows of 96 + 2 pixels, magnified twice
            assert grid.size == (3 * 98 * 2, 3 * 98 * 2)
    # The upload was deleted once read; the picture is all that is kept.
    space.assert_no_copy_of(upload.read_bytes())

    # Other controls redraw the session's input without a new upload: the budget bounds every |δ| under Linf.
    picture, caption = client.predict(0.2, "linf", 7, 2, api_name=f"/{domain}_views")
    assert "2 views, budget ε = 0.2 under Linf" in caption and "noise seed 7" in caption
    table = _table(caption)
    assert table.shape == (2, 4) and (table[:, 2] < 0.2).all()
    again, _ = client.predict(0.2, "linf", 7, 2, api_name=f"/{domain}_views")
    other, _ = client.predict(0.2, "linf", 8, 2, api_name=f"/{domain}_views")
    assert Path(again).read_bytes() == Path(picture).read_bytes()  # a seed gives the same views
    assert Path(other).read_bytes() != Path(picture).read_bytes()  # another seed, new noise
    _, caption = client.predict(0.05, "l2", 0, 1, api_name=f"/{domain}_views")
    np.testing.assert_allclose(_table(caption)[:, 1], 0.05, atol=2e-4)  # L2: the RMS of δ is the budget


def test_the_example_of_every_tab(client):
    for domain in vs.DOMAINS:
        picture, caption = client.predict(0.05, "l1", 0, 2, api_name=f"/{domain}_example")
        assert picture is not None and "Input: the example" in caption


@pytest.mark.parametrize(
    "domain, name, content, message",
    [
        ("image", "notes.txt", b"hello", "notes.txt is not an image file this Space reads (.txt)"),
        ("image", "broken.png", b"\x89PNG not really", "broken.png could not be read as an image"),
        ("image", "huge.png", _png(6000, 5000), "huge.png is 6000×5000 pixels (30 megapixels); the limit is 25"),
        ("image", "tiny.png", _png(4, 40), "tiny.png is too small (4×40)"),
        ("audio", "photo.png", _png(20, 20), "photo.png is not an audio file this Space reads"),
        ("audio", "noise.wav", os.urandom(2048), "noise.wav could not be read as audio"),
        ("audio", "click.wav", _wav(0.05), "click.wav is too short (0.050 s): at least 0.1 s"),
        ("audio", "speech.wav", _wav(61), "speech.wav is 61 s long; the limit is 60 s"),
        ("sensor", "clip.wav", _wav(1), "clip.wav is not a sensor recording this Space reads (.wav)"),
        ("sensor", "broken.ts", b"@data\n1,2,x:walk\n", "broken.ts could not be read as a .ts file"),
        ("sensor", "binary.ts", b"\xff\xfe\x00\x81" * 64, "binary.ts is not a text file"),
        ("sensor", "short.csv", b"ax,ay\n1,2\n3,4\n5,6\n", "short.csv (3 rows × 2 columns) is too short (3 samples"),
        (
            "sensor",
            "many.csv",
            b"\n".join([b",".join([b"1"] * 65)] * 40),
            "many.csv has 65 columns (channels); the limit is 64",
        ),
    ],
)
def test_a_bad_upload_gets_a_clear_message_and_is_deleted(space, client, tmp_path, domain, name, content, message):
    upload = tmp_path / name
    upload.write_bytes(content)
    picture, caption = client.predict(handle_file(str(upload)), 0.05, "l1", 0, 2, api_name=f"/{domain}")
    assert picture is None
    assert caption.startswith("**⚠ ") and message in caption.replace("\\", ""), caption
    assert "Traceback" not in caption and str(space.upload_dir) not in caption
    space.assert_no_copy_of(content)


def test_an_upload_over_the_size_limit_never_reaches_the_app(space, client, tmp_path):
    content = b"\0" * (vs.MAX_UPLOAD_BYTES + 1)
    upload = tmp_path / "huge.wav"
    upload.write_bytes(content)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(str(upload)), 0.05, "l1", 0, 2, api_name="/audio")
    # Sent anyway, the server refuses it while it arrives, and keeps nothing of it.
    refused = httpx.post(space.url + "/gradio_api/upload", files={"files": ("huge.wav", content)}, timeout=60)
    assert refused.status_code == 413 and "maximum allowed size" in refused.text
    space.assert_no_copy_of(content)
    assert not [path for path in space.files() if path.stat().st_size > vs.MAX_UPLOAD_BYTES // 2]


def test_bad_controls_and_no_input_get_messages(space, tmp_path):
    fresh = Client(space.url, download_files=str(tmp_path), verbose=False, analytics_enabled=False)
    assert fresh.predict(0.05, "l1", 0, 2, api_name="/image_views") == (
        None,
        "Upload a file or take the example to see its views.",
    )
    fresh.predict(0.05, "l1", 0, 2, api_name="/image_example")
    for controls, message in [
        ((-1, "l1", 0, 2), "the budget must be above 0"),
        ((0.05, "l3", 0, 2), "the budget norm must be one of L1, L2, Linf"),
        ((0.05, "l1", 1.5, 2), "the seed must be a whole number"),
        ((0.05, "l1", 0, 9), "the number of views must be from 1 to 8"),
    ]:
        picture, caption = fresh.predict(*controls, api_name="/image_views")
        assert picture is None and message in caption, caption
    # Either spelling of a norm works through the API.
    assert "under Linf" in fresh.predict(0.05, "Linf", 0, 1, api_name="/image_views")[1]


# ---------------------------------------------------------------------------------------------- the browser


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver): the browser test needs it")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1700",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    # An explicit driver: Selenium Manager would otherwise look for one on the network.
    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_the_page_in_a_browser_shows_views_of_the_example_and_of_an_upload(space, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(driver, 60)

    def picture_shown(domain: str) -> str:
        """Wait until the tab's picture has loaded; its URL."""
        script = f"const i = document.querySelector('#{domain}-grid img'); return i && i.complete && i.naturalWidth > 0 ? i.src : null"
        return wait.until(lambda d: d.execute_script(script))

    try:
        driver.get(space.url)
        example = wait.until(ec.element_to_be_clickable((By.ID, "image-example")))
        assert driver.title == "Viewmaker views"
        assert "Model: an untrained viewmaker" in driver.find_element(By.ID, "image-model").text
        tabs = [tab.text for tab in driver.find_elements(By.CSS_SELECTOR, "[role=tab]")]
        assert tabs == ["Image", "Speech clip", "Sensor recording"], tabs
        example.click()
        first = picture_shown("image")
        status = driver.find_element(By.ID, "image-status").text
        assert "4 views, budget ε = 0.05 under L1" in status and "Input: the example" in status
        driver.save_screenshot(str(ARTIFACTS / "image_example.png"))

        # New noise: another seed, another picture.
        driver.find_element(By.ID, "image-new-noise").click()
        wait.until(lambda d: picture_shown("image") != first)
        assert "noise seed 0." not in driver.find_element(By.ID, "image-status").text

        # An upload through the page's file input, on the speech tab: views, and nothing kept on the server.
        driver.find_element(By.XPATH, "//button[@role='tab'][normalize-space()='Speech clip']").click()
        clip = vs.write_example("audio", tmp_path)
        file_input = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#audio-upload input[type=file]")))
        file_input.send_keys(str(clip))
        picture_shown("audio")
        wait.until(lambda d: "Input: example.wav" in d.find_element(By.ID, "audio-status").text)
        driver.save_screenshot(str(ARTIFACTS / "audio_upload.png"))
        space.assert_no_copy_of(clip.read_bytes())
    finally:
        try:
            (ARTIFACTS / "browser_console.json").write_text(json.dumps(driver.get_log("browser"), indent=1))
        finally:
            driver.quit()


# ---------------------------------------------------------------------------------------------- in this process


def _tiny(num_channels: int, clamp: bool, budget: float = 0.05) -> ViewmakerModel:
    torch.manual_seed(0)
    config = ViewmakerConfig(num_channels=num_channels, num_res_blocks=1, clamp=clamp, distortion_budget=budget)
    return ViewmakerModel(config).eval()


def test_trained_viewmakers_from_run_folders_with_their_processors(tmp_path):
    image_run = tmp_path / "image_run"
    _tiny(1, True, 0.1).save_pretrained(image_run / "viewmaker")
    ViewmakerImageProcessor(num_channels=1, size={"height": 28, "width": 28}).save_pretrained(image_run / "viewmaker")
    sensor_folder = tmp_path / "sensor_viewmaker"  # a viewmaker's own folder
    _tiny(6, False).save_pretrained(sensor_folder)
    SensorSpectrogramProcessor(
        num_channels=6, n_fft=31, hop_length=4, channel_means=[0.0] * 6, channel_stds=[2.0] * 6
    ).save_pretrained(sensor_folder)

    models = vs.load_models([str(image_run), str(sensor_folder)])
    assert models["image"].trained and models["image"].source == str(image_run)
    assert "trained at budget 0.1 under L1" in models["image"].describe()
    assert not models["audio"].trained and "untrained" in models["audio"].describe()
    prepared = vs.read_upload(models["image"], vs.write_example("image", tmp_path))
    assert prepared.features.shape == (1, 1, 28, 28)
    grid, caption = vs.render_views(models["image"], prepared, 0.1, "l1", 0, 2)
    assert "2 views, budget ε = 0.1 under L1" in caption
    assert grid.size == (2 * 30 * 8, 3 * 30 * 8)  # 28 + 2 pixels a cell, magnified 8 times
    sensor = vs.read_upload(models["sensor"], vs.write_example("sensor", tmp_path))
    assert sensor.features.shape == (1, 6, 16, 100)  # 1 + (400 - 1) // 4 frames of an odd-sized STFT
    with pytest.raises(vs.UploadError, match="has 3 channels, but this viewmaker was trained on 6"):
        vs.prepare_sensor(models["sensor"], np.zeros((3, 200), np.float32), "three.csv")
    assert vs.prepare_example(models["sensor"]).features.shape[1] == 6

    with pytest.raises(ValueError, match="two image viewmakers given"):
        vs.load_models([str(image_run), str(image_run / "viewmaker")])
    bare = tmp_path / "bare"
    _tiny(4, False).save_pretrained(bare)
    with pytest.raises(ValueError, match="no preprocessor_config.json beside it"):
        vs.load_models([str(bare)])


def test_a_viewmaker_from_a_hub_repository(tmp_path, monkeypatch):
    run = tmp_path / "speech_run"
    _tiny(1, False, 0.08).save_pretrained(run / "viewmaker")
    LogMelFeatureExtractor(sampling_rate=8000, size=32, hop_length=250, n_fft=256, max_length=8000).save_pretrained(
        run / "viewmaker"
    )
    with HubServer(tokens={"hf_alice": "alice"}) as hub:
        point_this_process_at(hub, monkeypatch, tmp_path / "hf_home", "hf_alice")
        api = HfApi()
        api.create_repo("alice/speech-run")
        api.upload_folder(repo_id="alice/speech-run", folder_path=run)
        models = vs.load_models(["alice/speech-run@main"])
    audio = models["audio"]
    assert audio.trained and audio.distortion_budget == 0.08 and audio.processor.sampling_rate == 8000
    # A 16 kHz clip is resampled to the front end's 8 kHz, and its first second used.
    prepared = vs.read_upload(audio, vs.write_example("audio", tmp_path))
    assert prepared.features.shape == (1, 1, 32, 33)
    assert "resampled to 8000 Hz" in prepared.description and "its first 1.00 s used" in prepared.description


def test_a_norm_change_shares_the_weights_and_leaves_the_model_alone():
    model = vs.default_model("image")
    base = model.viewmaker
    l2 = model.viewmaker_for(3, "l2")
    assert l2 is not base and l2.conv1.conv2d.weight is base.conv1.conv2d.weight
    assert base.config.budget_norm == "l1" and l2.config.budget_norm == "l2"
    assert model.viewmaker_for(3, "l2") is l2 and model.viewmaker_for(3, "l1") is base
    prepared = vs.prepare_example(model)
    _, _, perturbation = vs.make_views(model, prepared, 0.03, "l2", 0, 2)
    torch.testing.assert_close(perturbation.square().mean((1, 2, 3)).sqrt(), torch.full((2,), 0.03), atol=1e-4, rtol=0)


def test_the_defaults_are_the_same_at_every_start_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    first, second = vs.build_default_viewmaker(6, False), vs.build_default_viewmaker(6, False)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    sensor = vs.default_model("sensor")
    assert sensor.viewmaker_for(6, "l1") is sensor.viewmaker_for(6, "l1")


def test_uploads_are_deleted_only_inside_the_upload_folder(tmp_path):
    root, outside = tmp_path / "gradio", tmp_path / "mine.png"
    (root / "abc").mkdir(parents=True)
    (root / "abc" / "a.png").write_bytes(b"x")
    outside.write_bytes(b"y")
    assert not vs.discard_upload(outside, root) and outside.exists()
    assert not vs.discard_upload(root / ".." / "mine.png", root) and outside.exists()
    with pytest.raises(vs.UploadError, match="is not an upload of this page"):
        vs.read_upload(vs.default_model("image"), outside, root)
    assert vs.discard_upload(root / "abc" / "a.png", root)
    assert not (root / "abc").exists() and root.exists()


def test_a_viewmaker_that_cannot_be_loaded_stops_the_app_with_a_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    app = load_script(SPACE / "app.py")
    with pytest.raises(SystemExit) as stopped:
        app.main(["--model", str(tmp_path / "no_such_run")])
    assert stopped.value.code == 2
    assert "cannot load the viewmaker" in capsys.readouterr().err
    monkeypatch.setenv("VIEWMAKER_MODEL", f"{tmp_path / 'no_such_run'},")
    with pytest.raises(SystemExit) as stopped:
        app.main([])
    assert stopped.value.code == 2 and "no_such_run is not a folder" in capsys.readouterr().err


def test_publish_writes_the_space(tmp_path):
    publish = load_script(SPACE / "publish.py")
    folder = tmp_path / "space"
    package = "hf-viewmaker @ git+https://example.invalid/hf-viewmaker@0123abc"
    publish.main(["alice/views", "--model", "alice/run", "--package", package, "--dry_run", str(folder)])
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "app.py", "requirements.txt", "viewmaker_space.py"]
    requirements = (folder / "requirements.txt").read_text().splitlines()
    assert requirements[0] == f"--extra-index-url {publish.CPU_TORCH_INDEX}" and package in requirements
    assert "hf-viewmaker" not in requirements and "gradio>=6.31,<7" in requirements
    card = (folder / "README.md").read_text()
    assert "\nmodels:\n- alice/run\n" in card and "\nsdk: gradio\n" in card and "\napp_file: app.py\n" in card
    # The Space's gradio is the one this checkout was tested with.
    import gradio

    major = gradio.__version__.split(".")[0]
    assert f"\nsdk_version: {major}." in (SPACE / "README.md").read_text()
    with pytest.raises(SystemExit):
        publish.main(["alice/views", "--model", str(tmp_path), "--dry_run", str(folder)])
