"""Publish the output folder of a training run (`training/pretrain.py --output_dir`) to the Hugging Face Hub.

    from hf_viewmaker.hub import push_run_to_hub
    push_run_to_hub("outputs/quickstart", "my-name/viewmaker-fashion-mnist")

One commit holds the run in the published layout (`hf_viewmaker.hub.layout`): the encoder with its processor and
code at the repository's root, the viewmaker with its own in `viewmaker/` (its code at the root as well:
transformers fetches the remote code of `from_pretrained(repo_id, subfolder="viewmaker", trust_remote_code=True)`
from there, and this is what makes it load without this package), plus `views.png`, `README.md`,
`training_args.json`, `train_results.json`, `eval_results.json`, `eval_args.json` and `conversion.json`, whichever
exist.
Checkpoints (`checkpoints/`), TensorBoard logs, hidden scratch folders (`.partial-*`) and any other file are never
uploaded.

The token is resolved by `huggingface_hub` as usual (the `token` argument, else `HF_TOKEN`, else `hf auth login`); it
is never logged, written or put in an error message raised here, and a file about to be uploaded that contains it
stops the push.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from huggingface_hub import CommitOperationAdd, HfApi, get_token, set_client_factory
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import _http as hf_http
from huggingface_hub.utils import httpx, validate_repo_id  # httpx: the library huggingface_hub's client is built on

from .layout import PUBLISHED_FOLDERS, model_folders

logger = logging.getLogger(__name__)

RUN_FILES = (
    "README.md",
    "views.png",
    "training_args.json",
    "train_results.json",
    "eval_results.json",
    "eval_args.json",
    "conversion.json",
)
DEFAULT_COMMIT_MESSAGE = "Upload a Viewmaker Networks run (hf-viewmaker)"
#: Seconds any one Hub request may take, and how often a request that got no answer is tried.
HUB_TIMEOUT_SECONDS = 60.0
HUB_TRIES = 3


class IncompleteRunError(FileNotFoundError):
    """The folder is not a complete training run; `missing` lists the paths (relative to it) that are absent."""

    def __init__(self, output_dir: Path, missing: list[str], message: str | None = None):
        self.output_dir, self.missing = output_dir, missing
        super().__init__(message or f"{output_dir} is not a complete training run: missing {', '.join(missing)}")


class HubAuthenticationError(PermissionError):
    """The Hub refused the token (HTTP 401) or its rights (HTTP 403), or no token was found."""


class HubPushError(RuntimeError):
    """Any other failure of a push whose message had to be cleaned of the token."""


def push_run_to_hub(
    output_dir: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    model_card: str | None = None,
    extra_files: dict[str, Path] | None = None,
    timeout: float = HUB_TIMEOUT_SECONDS,
    tries: int = HUB_TRIES,
) -> str:
    """Upload a training run to the model repository `repo_id` (created if needed) in one commit.

    Args:
        output_dir: the run's `--output_dir` (`viewmaker/` and/or `encoder/`), a folder in the published layout, or
            a linear-evaluation output (`training/linear_eval.py --output_dir`). Each model holds at least
            `config.json`, `model.safetensors` (or a sharded index and its shards) and the code its `auto_map`s
            name.
        repo_id: `namespace/name`.
        private: create the repository private. An existing repository keeps its visibility, but pushing with
            `private=True` to an existing *public* repository is refused rather than publishing the run.
        revision: a branch to commit to, created from `main` if it does not exist (default: `main`).
        token: a Hub token; by default `huggingface_hub` finds one (`HF_TOKEN`, then `hf auth login`).
        commit_message: the commit's summary.
        model_card: the text of `README.md` to upload instead of the run's file (so that a failed push leaves the
            local card as it was).
        extra_files: `{path in the repository: local file}` to upload as well, e.g. the evaluation results the card
            reports; they replace the run's files of the same name.
        timeout: seconds each Hub request may take before it is abandoned.
        tries: how often a request that got no answer (timeout, refused or broken connection) is tried.

    Returns:
        the URL of the commit (of the current head when nothing changed since the last push).

    Raises:
        IncompleteRunError: a required file is missing (the message names every one).
        HubAuthenticationError: no token, a token the Hub rejects, or one without write access to the namespace.
    """
    output_dir = Path(output_dir)
    check_repo_id(repo_id)
    files = collect_run_files(output_dir)
    missing = [str(path) for path in (extra_files or {}).values() if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"files to upload not found: {missing}")
    files |= {name: Path(path) for name, path in (extra_files or {}).items()}
    # Resolved only to keep it out of what we upload and raise; huggingface_hub resolves it the same way itself.
    resolved_token = token if token is not None else get_token()
    if not resolved_token:
        raise HubAuthenticationError(
            "No Hugging Face token found: set HF_TOKEN or run `hf auth login` (a token with write access)."
        )
    _refuse_files_holding(files, resolved_token)

    api = HfApi(token=resolved_token)
    branch = revision or "main"
    logger.info(
        "Pushing %d files from %s to %s (branch %s) on %s", len(files), output_dir, repo_id, branch, api.endpoint
    )
    for path_in_repo in files:
        logger.debug("  %s", path_in_repo)
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(local)) for path, local in files.items()]
    if model_card is not None:
        operations = [op for op in operations if op.path_in_repo != "README.md"]
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=model_card.encode()))
    try:
        with _hub_requests_time_out(timeout):
            _tried(
                tries, api.endpoint, lambda: api.create_repo(repo_id, private=True if private else None, exist_ok=True)
            )
            if private and not _tried(tries, api.endpoint, lambda: api.model_info(repo_id)).private:
                raise HubPushError(
                    f"{repo_id} already exists and is public: refusing to push a run asked to be private. Make the "
                    "repository private first, or push without --private."
                )
            if branch != "main":
                _tried(tries, api.endpoint, lambda: api.create_branch(repo_id, branch=branch, exist_ok=True))
            commit = _tried(
                tries,
                api.endpoint,
                lambda: api.create_commit(repo_id, operations, commit_message=commit_message, revision=branch),
            )
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            raise HubAuthenticationError(
                f"The Hub at {api.endpoint} rejected the token (401 Unauthorized): nothing was uploaded to {repo_id}. "
                "Check HF_TOKEN or run `hf auth login` with a valid token."
            ) from None
        if status == 403:
            raise HubAuthenticationError(
                f"The token may not write to {repo_id} on {api.endpoint} (403 Forbidden): nothing was uploaded. "
                "Use a token with write access to this namespace."
            ) from None
        _raise_without_token(error, resolved_token)
    except Exception as error:
        _raise_without_token(error, resolved_token)
    logger.info("Pushed %s", commit.commit_url)
    return commit.commit_url


def check_repo_id(repo_id: str) -> None:
    """Raise HubPushError unless `repo_id` is a valid `namespace/name` model repository id."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubPushError(f"--hub_model_id {repo_id!r} is not a valid repository id: {error}") from None
    if repo_id.count("/") != 1:
        raise HubPushError(f"--hub_model_id {repo_id!r} must be NAMESPACE/NAME")


@contextmanager
def _hub_requests_time_out(seconds: float) -> Iterator[None]:
    """Within the block, every request of `huggingface_hub` gives up after `seconds` (its own client waits forever
    for a server that accepts the connection and never answers)."""

    # The factory in use (a user's, with their proxies), which `huggingface_hub` keeps in a private global.
    previous = getattr(hf_http, "_GLOBAL_CLIENT_FACTORY", hf_http.default_client_factory)

    def client() -> httpx.Client:
        timed = previous()
        timed.timeout = httpx.Timeout(seconds)
        return timed

    set_client_factory(client)
    try:
        yield
    finally:
        set_client_factory(previous)


def _tried(tries: int, endpoint: str, request):
    """`request()`, tried again (after 1 s, then 2 s, ...) when it got no answer, up to `tries` times; then an error
    naming the endpoint."""
    for attempt in range(1, tries + 1):
        try:
            return request()
        except httpx.TransportError as error:  # timeouts, refused and broken connections
            if attempt == tries:
                raise HubPushError(
                    f"the Hub at {endpoint} did not answer ({type(error).__name__}: {error}) in {tries} tries: "
                    "the push did not complete"
                ) from None
            logger.warning(f"the Hub at {endpoint} did not answer ({type(error).__name__}); trying again")
            time.sleep(attempt)


def collect_run_files(output_dir: str | Path) -> dict[str, Path]:
    """{path in the repository: local file} for everything of the run that is published, in the published layout
    (`hf_viewmaker.hub.layout`: the encoder at the root, the viewmaker in `viewmaker/`); raises IncompleteRunError if
    the run is incomplete.

    `output_dir` may be a pretraining run folder (`encoder/`, `viewmaker/`), a folder already in the published layout
    or a linear-evaluation output (the probe at its root). Of each model folder only what `from_pretrained` reads is
    taken: `config.json`, the weights, `preprocessor_config.json` and the code their `auto_map`s name."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise IncompleteRunError(output_dir, [], f"{output_dir} does not exist or is not a folder")
    folders = model_folders(output_dir)
    if not folders:
        raise IncompleteRunError(
            output_dir,
            ["encoder/", "viewmaker/"],
            f"{output_dir} holds no model: no encoder/, viewmaker/ or config.json",
        )
    missing = [
        (folder / path).relative_to(output_dir).as_posix()
        for folder in folders.values()
        for path in _missing_model_files(folder)
    ]
    if missing:
        raise IncompleteRunError(output_dir, missing)

    files: dict[str, Path] = {}

    def add(path_in_repo: str, path: Path) -> None:
        _refuse_links_out(path, output_dir)
        if path_in_repo in files and files[path_in_repo].read_bytes() != path.read_bytes():
            raise HubPushError(
                f"{files[path_in_repo].relative_to(output_dir)} and {path.relative_to(output_dir)} differ, but both "
                f"are published as {path_in_repo}: the encoder's and the viewmaker's remote code is loaded from the "
                "repository's root, where only one of each file fits."
            )
        files[path_in_repo] = path

    for part, folder in folders.items():
        prefix = f"{PUBLISHED_FOLDERS[part]}/" if PUBLISHED_FOLDERS[part] else ""
        for name in _model_files(folder):
            add(prefix + name, folder / name)
        # transformers fetches the code of `from_pretrained(repo_id, subfolder=..., trust_remote_code=True)` from the
        # repository's root, not from the subfolder (transformers 5.x): the code files go to the root as well.
        for name in _code_files(folder):
            add(name, folder / name)
    for name in RUN_FILES:
        if (output_dir / name).is_file():
            add(name, output_dir / name)
    return files


def _refuse_links_out(path: Path, output_dir: Path) -> None:
    """A link out of the run folder would publish whatever it points to: refuse it."""
    if not path.resolve().is_relative_to(output_dir.resolve()):
        raise HubPushError(f"{path} links to {path.resolve()}, outside {output_dir}: refusing to upload it")


def _weight_files(folder: Path) -> list[str]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():  # a sharded checkpoint: the index and every shard it names
        return [index.name, *sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))]
    return ["model.safetensors"]


def _head_files() -> tuple[str, ...]:
    """Saved beside a transformers backbone: its contrastive projection head (a run) or its linear head (a probe)."""
    from ..evaluation.linear_probe import BackboneLinearProbe
    from ..models.pretraining.backbone_encoder import PROJECTION_HEAD_CONFIG, PROJECTION_HEAD_WEIGHTS

    return (
        PROJECTION_HEAD_WEIGHTS,
        PROJECTION_HEAD_CONFIG,
        BackboneLinearProbe.HEAD_WEIGHTS,
        BackboneLinearProbe.HEAD_CONFIG,
    )


def _model_files(folder: Path) -> list[str]:
    """What `from_pretrained` reads from a model folder: its config, weights and processor (with their code), and
    the heads saved beside a transformers backbone."""
    names = ["config.json", *_weight_files(folder), *_code_files(folder)]
    names += [name for name in ("preprocessor_config.json", *_head_files()) if (folder / name).is_file()]
    return names


def _missing_model_files(folder: Path) -> list[str]:
    if not (folder / "config.json").is_file():
        return ["config.json"]
    return [name for name in _model_files(folder) if not (folder / name).is_file()]


def _code_files(folder: Path) -> list[str]:
    """The modeling, configuration and processing files that `trust_remote_code=True` will fetch: those the
    `auto_map` of `config.json` and of `preprocessor_config.json` name, and the files they import relatively."""
    from transformers.dynamic_module_utils import get_relative_imports

    references = []
    for config in ("config.json", "preprocessor_config.json"):
        if (folder / config).is_file():
            auto_map = json.loads((folder / config).read_text()).get("auto_map", {})
            references += [
                ref for value in auto_map.values() for ref in (value if isinstance(value, list) else [value])
            ]
    files = {f"{ref.rsplit('.', 1)[0]}.py" for ref in references if isinstance(ref, str) and "--" not in ref}
    to_read = sorted(files)
    while to_read:  # follow relative imports through the files that exist (a missing one is reported by the caller)
        file = to_read.pop()
        if (folder / file).is_file():
            imported = {f"{name.replace('.', '/')}.py" for name in get_relative_imports(folder / file)}
            to_read += sorted(imported - files)
            files |= imported
    return sorted(files)


def _refuse_files_holding(files: dict[str, Path], token: str) -> None:
    needle, overlap = token.encode(), len(token) - 1
    for path_in_repo, path in files.items():
        tail = b""
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                if needle in tail + chunk:
                    raise HubPushError(f"{path} ({path_in_repo}) contains your Hub token: refusing to upload it.")
                tail = chunk[-overlap:] if overlap else b""


def _raise_without_token(error: Exception, token: str) -> NoReturn:
    if token in str(error):
        raise HubPushError(f"{type(error).__name__}: {str(error).replace(token, '***')}") from None
    raise error
