"""A Gradio page that shows what a viewmaker does to your own image, speech clip or sensor recording.

    python space/app.py                                     # untrained default viewmakers, offline
    VIEWMAKER_MODEL=outputs/quickstart python space/app.py  # a run folder, a viewmaker folder or a Hub repo id
    python space/app.py --model outputs/quickstart --model NAMESPACE/SPEECH_RUN   # one per domain

It serves on the host and port of `GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` (default 127.0.0.1:7860). On a
Hugging Face Space this file is the Space's `app.py` (see README.md beside it). Uploads are read once, checked, turned
into the viewmaker's input and deleted before the request ends; the page keeps only that input, in the session.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

# Nothing may wait on the network: no usage statistics, no version check.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from gradio.utils import get_upload_folder

sys.path.insert(0, str(Path(__file__).resolve().parent))
import viewmaker_space as vs

logger = logging.getLogger("viewmaker_space")

TITLE = "Viewmaker views"
INTRO = """# Viewmaker views

A **viewmaker** ([Tamkin, Wu & Goodman, ICLR 2021](https://arxiv.org/abs/2010.07432)) is a small network trained to
make the two *views* of an input that contrastive learning needs: it adds a perturbation δ whose size a **budget ε**
fixes, and it is trained adversarially against the encoder, so the views hold what the encoder must learn to ignore.
Upload an image, a speech clip or a sensor recording (or take the example) to see its views side by side; change the
budget, the norm that bounds δ and the noise seed. Uploads are deleted as soon as they are read.
"""
TAB_TITLES = {"image": "Image", "audio": "Speech clip", "sensor": "Sensor recording"}
UPLOAD_LABELS = {
    "image": "An image (PNG, JPEG, WebP, BMP, GIF, TIFF)",
    "audio": "A sound clip (WAV, FLAC, OGG, MP3, AIFF)",
    "sensor": "A sensor recording (.ts of sktime / aeon, or .csv: one row per time step, one column per channel)",
}
LIMITS = {
    "image": f"At most {vs.MAX_IMAGE_MEGAPIXELS} megapixels, at least {vs.MIN_IMAGE_SIDE} pixels a side.",
    "audio": f"{vs.MIN_AUDIO_SECONDS:g} s to {vs.MAX_AUDIO_SECONDS:.0f} s; stereo is mixed to mono.",
    "sensor": (
        f"Up to {vs.MAX_SENSOR_CHANNELS} channels and {vs.MAX_SENSOR_SAMPLES:,} samples per channel; a .ts file's first "
        "series is used, and a .csv may have a header row."
    ),
}
LIMITS = {domain: f"{text} Files up to {vs.MAX_UPLOAD_MB} MB, deleted once read." for domain, text in LIMITS.items()}
PROMPT = "Upload a file or take the example to see its views."


def _error(error: Exception) -> str:
    return f"**⚠ {error}**" if str(error) else "**⚠ The request could not be handled.**"


def _unexpected(domain: str, error: Exception) -> str:
    # The page gets one line; the traceback goes to the server log only.
    logger.exception("unexpected failure in the %s tab", domain)
    return f"**⚠ Something went wrong while making the views ({type(error).__name__}).** Try another file."


def _handlers(model: vs.SpaceModel, upload_root: str):
    domain = model.domain

    def from_upload(upload, budget, norm, seed, count):
        """Read an upload, delete it, and make its views: returns the session's input, the picture, the caption.

        Registered with `preprocess=False`: `upload` is the file's payload (`path` in gradio's upload folder, which
        gradio has checked, and `orig_name`), and the controls' values arrive as sent, checked by `render_views`.
        (`gr.File`'s own preprocessing would also leave an empty temporary file in the cache at every call.)"""
        path = upload.get("path") if isinstance(upload, dict) else None
        try:
            if not path:
                return None, None, PROMPT
            prepared = vs.read_upload(model, path, upload_root, name=upload.get("orig_name"))
            grid, text = vs.render_views(model, prepared, budget, norm, seed, count)
            return prepared, grid, text
        except vs.UploadError as error:
            return None, None, _error(error)
        except Exception as error:
            return None, None, _unexpected(domain, error)
        finally:
            vs.discard_upload(path, upload_root)

    def from_example(budget, norm, seed, count):
        """Make views of the example (made in memory): returns the session's input, the picture, the caption."""
        try:
            prepared = vs.prepare_example(model)
            grid, text = vs.render_views(model, prepared, budget, norm, seed, count)
            return prepared, grid, text
        except vs.UploadError as error:
            return None, None, _error(error)
        except Exception as error:
            return None, None, _unexpected(domain, error)

    def again(prepared, budget, norm, seed, count):
        """New views of the session's input (after a change of budget, norm, seed or number of views)."""
        if prepared is None:
            return None, PROMPT
        try:
            return vs.render_views(model, prepared, budget, norm, seed, count)
        except vs.UploadError as error:
            return None, _error(error)
        except Exception as error:
            return None, _unexpected(domain, error)

    return from_upload, from_example, again


def _tab(model: vs.SpaceModel, upload_root: str) -> None:
    d = model.domain
    from_upload, from_example, again = _handlers(model, upload_root)
    gr.Markdown(model.describe(), elem_id=f"{d}-model")
    with gr.Row():
        with gr.Column():
            upload = gr.File(label=UPLOAD_LABELS[d], elem_id=f"{d}-upload", height=140)
            gr.Markdown(LIMITS[d])
            example = gr.Button(
                f"Take the example: {vs.EXAMPLE_DESCRIPTIONS[d]}", elem_id=f"{d}-example", variant="primary"
            )
        with gr.Column():
            budget = gr.Slider(
                0.001,
                max(1.0, 2 * model.distortion_budget),
                value=model.distortion_budget,
                step=0.001,
                label="Budget ε",
                info=f"{'the one it was trained with' if model.trained else 'the paper’s'}: {model.distortion_budget:g}",
                elem_id=f"{d}-budget",
            )
            norm = gr.Radio(
                [(name, key) for key, name in vs.NORM_NAMES.items()],
                value=model.budget_norm,
                label="Budget norm",
                info="L1: mean |δ| = ε · L2: RMS of δ = ε · Linf: every |δ| < ε",
                elem_id=f"{d}-norm",
            )
            count = gr.Slider(1, vs.MAX_VIEWS, value=4, step=1, label="Views side by side", elem_id=f"{d}-count")
            with gr.Row():
                seed = gr.Number(0, precision=0, minimum=0, label="Noise seed (Enter to apply)", elem_id=f"{d}-seed")
                new_noise = gr.Button("New noise", elem_id=f"{d}-new-noise")
    grid = gr.Image(
        label="input (top) · view (middle) · perturbation, amplified (bottom): one column per view",
        type="pil",
        format="png",
        interactive=False,
        elem_id=f"{d}-grid",
        buttons=["download", "fullscreen"],
    )
    status = gr.Markdown(PROMPT, elem_id=f"{d}-status")
    prepared = gr.State(None, time_to_live=3600)

    controls = [budget, norm, seed, count]
    # The handlers check every value themselves (it may come from the API rather than from a widget), so that a bad
    # one gets a message in the page: nothing is preprocessed.
    upload.upload(from_upload, [upload, *controls], [prepared, grid, status], api_name=d, preprocess=False)
    example.click(from_example, controls, [prepared, grid, status], api_name=f"{d}_example", preprocess=False)
    gr.on(
        [budget.release, norm.change, count.release, seed.submit],
        again,
        [prepared, *controls],
        [grid, status],
        api_name=f"{d}_views",
        preprocess=False,
    )
    new_noise.click(lambda: secrets.randbelow(2**31), None, seed, api_visibility="private", queue=False).then(
        again, [prepared, *controls], [grid, status], api_visibility="private", preprocess=False
    )


def build_demo(models: dict[str, vs.SpaceModel], upload_root: str | None = None) -> gr.Blocks:
    """The page: one tab per domain. `upload_root`: gradio's upload folder (where uploads may be deleted)."""
    upload_root = upload_root or get_upload_folder()
    # Pictures of views are served from gradio's cache: every minute, those older than 10 minutes are deleted.
    with gr.Blocks(title=TITLE, delete_cache=(60, 600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            for domain in vs.DOMAINS:
                with gr.Tab(TAB_TITLES[domain], id=domain, elem_id=f"{domain}-tab"):
                    _tab(models[domain], upload_root)
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the viewmaker Space (host and port: GRADIO_SERVER_NAME/PORT).")
    parser.add_argument(
        "--model",
        action="append",
        metavar="RUN_OR_REPO",
        help="a run folder, a viewmaker folder or a Hub repo id (ID@REVISION for a branch or commit); repeat for "
        "several domains (default: $VIEWMAKER_MODEL, comma-separated; none: untrained defaults)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sources = args.model or [s for s in os.environ.get("VIEWMAKER_MODEL", "").split(",") if s.strip()]
    try:
        models = vs.load_models(sources)
    except (OSError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: cannot load the viewmaker: {error}\n")
    for domain, model in models.items():
        logger.info("%s: %s", domain, model.source)
    demo = build_demo(models)
    demo.queue(default_concurrency_limit=2, max_size=32)
    demo.launch(max_file_size=f"{vs.MAX_UPLOAD_MB}mb", ssr_mode=False, show_error=False, footer_links=["api"])


if __name__ == "__main__":
    main()
