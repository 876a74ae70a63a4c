"""A minimal, in-memory stand-in for the Hugging Face Hub's HTTP API, for tests.

It emulates just what `huggingface_hub` 2.4 sends when a run is pushed with `HfApi.create_repo` /
`create_branch` / `create_commit` and read back with `model_info` / `list_repo_files` / `hf_hub_download` (and so
`transformers`' `from_pretrained`), with the request and response shapes of the real Hub:

    POST /api/repos/create                                  create_repo      {"url": ...}; 409 if it exists
    POST /api/models/{repo_id}/branch/{branch}              create_branch    409 if it exists
    POST /api/validate-yaml                                 README.md check  200 {"errors": [], "warnings": [...]};
                                                                             400 with the errors (see below)
    POST /api/models/{repo_id}/preupload/{revision}         upload modes     "regular" for every file (no LFS/Xet)
    POST /api/models/{repo_id}/commit/{revision}            create_commit    NDJSON: a header, then base64 "file" ops;
                                                                             400 if README.md has invalid metadata
    GET  /api/models/{repo_id}[/revision/{revision}]        model_info       id, sha, private, siblings
    GET  /api/models/{repo_id}/tree/{revision}[/{path}]     list_repo_tree   (?recursive=true)
    GET|HEAD /{repo_id}/resolve/{revision}/{path}           file download    ETag, X-Repo-Commit, Content-Length

Model-card metadata is checked by `card_metadata_errors`, with huggingface_hub's own parsers (the front matter split
as `huggingface_hub.repocard` splits it, `yaml.safe_load`, `ModelCardData`, `model_index_to_eval_results`) and the
types of the Hub's schema. The Hub's validator is not public: these checks are a subset of its checks, and the
messages copy the style of its messages (`"tags" must be an array`, `"model-index[0].results[0].dataset.type" is
required`), not their exact wording.

- `/api/validate-yaml` answers 200 `{"errors": [], "warnings": [...]}` for valid metadata (a warning if there is
  none), and 400 with the errors otherwise: as text when asked for `text/plain` (what `ModelCard.validate()` asks
  for, and raises `ValueError(response.text)` from), else as JSON `{"errors": [{"message": ...}], "warnings": [...]}`
  (what `HfApi.create_commit` / `upload_folder` read before uploading anything, and raise `ValueError` from).
- a commit that adds a README.md at the repository root with invalid metadata is refused with 400
  `Invalid metadata in README.md.` and the errors, one a line (`BadRequestError` in huggingface_hub), and commits
  nothing: the branch keeps its head.

Every repository is a model repository. Commits are kept in memory as full snapshots {path: bytes}. A file's oid is
its git blob SHA-1, as the Hub gives for regular (non-LFS) files; commit oids are random 40-hex strings.

Authentication follows the Hub: a request whose `Authorization: Bearer <token>` names an unknown token gets
401 "Invalid credentials in Authorization header", whatever it asks for; writes need the token of the namespace's
owner (no token: 401; someone else's namespace: 403); private repositories are invisible (404 RepoNotFound)
without their owner's token. Errors carry the Hub's `X-Error-Code` / `X-Error-Message` headers, which
`huggingface_hub` turns into `RepositoryNotFoundError`, `RevisionNotFoundError` and `EntryNotFoundError`.

Everything else answers 404 and is listed in `HubServer.unhandled` (the client may ask for telemetry and the like).
`HubServer.requests` records every (method, path) served.

    with HubServer(tokens={"hf_secret": "alice"}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from huggingface_hub import DatasetCardData, ModelCardData, SpaceCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from huggingface_hub.repocard_data import model_index_to_eval_results
from huggingface_hub.utils import validate_repo_id

CARD_DATA_CLASSES = {"model": ModelCardData, "dataset": DatasetCardData, "space": SpaceCardData}
# What the Hub warns of (and still accepts) when a README.md has no metadata.
MISSING_METADATA_WARNING = (
    "Empty or missing yaml metadata in repo card (https://huggingface.co/docs/hub/model-cards#model-card-metadata)"
)


def point_this_process_at(server: HubServer, monkeypatch, home, token: str | None) -> None:
    """Point this process's `huggingface_hub` at `server`, online, with `token` in HF_TOKEN and an empty HF_HOME."""
    import huggingface_hub

    for name, value in {
        "HF_ENDPOINT": server.url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(home),
    }.items():
        monkeypatch.setenv(name, value)
    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)
    # huggingface_hub read these environment variables when it was imported.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", server.url)
    # Downloads build their URL from this template, made from the endpoint when huggingface_hub was imported.
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        server.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(Path(home) / "token"))


def git_blob_oid(content: bytes) -> str:
    """The git SHA-1 of a blob: the oid (and ETag) the Hub gives regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def card_metadata_errors(content: str, repo_type: str = "model") -> list[str]:
    """The errors the Hub finds in the metadata (YAML front matter) of a README.md; [] if it is valid.

    The front matter is found as `huggingface_hub.repocard` finds it (`REGEX_YAML_BLOCK`): a README.md without one
    is valid. It must be well-formed YAML and a mapping, load into `ModelCardData` (or the dataset / Space card data
    class), and hold a `model-index` that `model_index_to_eval_results` parses; the fields the Hub types must have
    their types: `license`, `library_name` and `pipeline_tag` strings, `tags`, `datasets` and `metrics` lists of
    strings, `language` a string or a list of them, `base_model` a model id or a list of them. (huggingface_hub has
    no list of the Hub's pipeline tags, nor of its licences: their values are not checked. A field set to null is
    taken as absent.)
    """
    if repo_type not in CARD_DATA_CLASSES:
        raise ValueError(f"repo_type must be one of {sorted(CARD_DATA_CLASSES)}, not {repo_type!r}")
    match = REGEX_YAML_BLOCK.search(content)
    if match is None:
        return []
    first_line = content[: match.start(2)].count("\n") + 1  # the README.md line the YAML block starts on
    try:
        metadata = yaml.safe_load(match.group(2))
    except yaml.YAMLError as error:
        return [f"Invalid YAML in the metadata of README.md: {_yaml_problem(error, first_line)}"]
    if metadata is None:  # an empty block: the Hub warns, and accepts it
        return []
    if not isinstance(metadata, dict):
        return [f'"metadata" must be an object (a YAML mapping), not {_kind(metadata)}']

    errors = [f'"{key}" must be a string key, not {_kind(key)}' for key in metadata if not isinstance(key, str)]
    for key in ("license", "library_name", "pipeline_tag", "license_name", "license_link"):
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            errors.append(f'"{key}" must be a string')
    for key in ("tags", "datasets", "metrics"):
        errors += _string_list_errors(key, metadata.get(key), single_string_allowed=False)
    errors += _string_list_errors("language", metadata.get("language"), single_string_allowed=True)
    base_models = metadata.get("base_model")
    base_model_errors = _string_list_errors("base_model", base_models, single_string_allowed=True)
    errors += base_model_errors
    if base_models is not None and not base_model_errors:
        for base_model in [base_models] if isinstance(base_models, str) else base_models:
            try:
                validate_repo_id(base_model)
            except HFValidationError:
                errors.append(
                    f"base_model with value '{base_model}' is not valid. Use a model id from https://hf.co/models."
                )

    model_index_errors = []
    if repo_type == "model" and metadata.get("model-index") is not None:
        model_index_errors = _model_index_errors(metadata["model-index"])
        errors += model_index_errors
    # huggingface_hub's own loading of the card: what ModelCard(content) would raise.
    loaded = {k: v for k, v in metadata.items() if not (k == "model-index" and model_index_errors)}
    try:
        CARD_DATA_CLASSES[repo_type](**loaded)
    except Exception as error:  # TypeError, ValueError, ...: whatever the class raises is an invalid card
        errors.append(f"The metadata cannot be loaded by huggingface_hub: {type(error).__name__}: {error}")
    return errors


def _yaml_problem(error: yaml.YAMLError, first_line: int) -> str:
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem is None or mark is None:
        return " ".join(str(error).split())
    context = getattr(error, "context", None)
    where = f"line {first_line + mark.line}, column {mark.column + 1}"
    return f"{context}: {problem} ({where})" if context else f"{problem} ({where})"


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number"}
    return kinds.get(type(value), "a number" if isinstance(value, float) else f"a {type(value).__name__}")


def _string_list_errors(key: str, value: Any, single_string_allowed: bool) -> list[str]:
    if value is None or (single_string_allowed and isinstance(value, str)):
        return []
    if not isinstance(value, list):
        return [f'"{key}" must be one of [string, array]' if single_string_allowed else f'"{key}" must be an array']
    return [f'"{key}[{i}]" must be a string' for i, item in enumerate(value) if not isinstance(item, str)]


# The model-index fields model_index_to_eval_results reads: (name, required, type) per level.
_MODEL_INDEX_TASK = (("type", True, str), ("name", False, str))
_MODEL_INDEX_DATASET = (
    ("type", True, str),
    ("name", True, str),
    ("config", False, str),
    ("split", False, str),
    ("revision", False, str),
)
_MODEL_INDEX_SOURCE = (("name", False, str), ("url", False, str))
_MODEL_INDEX_METRIC = (
    ("type", True, str),
    ("value", True, object),
    ("name", False, str),
    ("config", False, str),
    ("verified", False, bool),
    ("verifyToken", False, str),
)


def _model_index_errors(model_index: Any) -> list[str]:
    """The errors of a `model-index`, each naming its field (`"model-index[0].results[1].dataset.type" is
    required`); then, if it has none, whatever `model_index_to_eval_results` still raises on it."""

    def fields(value: Any, path: str, spec) -> list[str]:
        if not isinstance(value, dict):
            return [f'"{path}" must be an object']
        found = []
        for name, required, kind in spec:
            if value.get(name) is None:
                found += [f'"{path}.{name}" is required'] if required else []
            elif not isinstance(value[name], kind):
                found.append(f'"{path}.{name}" must be a {"boolean" if kind is bool else "string"}')
        return found

    def array(value: Any, path: str) -> list[str] | None:
        if value is None:
            return [f'"{path}" is required']
        return None if isinstance(value, list) else [f'"{path}" must be an array']

    if not isinstance(model_index, list):
        return ['"model-index" must be an array']
    if not model_index:
        return ['"model-index" must contain at least 1 items']
    errors = []
    for i, entry in enumerate(model_index):
        path = f"model-index[{i}]"
        if not isinstance(entry, dict):
            errors.append(f'"{path}" must be an object')
            continue
        errors += fields(entry, path, (("name", True, str),))
        problem = array(entry.get("results"), f"{path}.results")
        if problem:
            errors += problem
            continue
        for j, result in enumerate(entry["results"]):
            result_path = f"{path}.results[{j}]"
            if not isinstance(result, dict):
                errors.append(f'"{result_path}" must be an object')
                continue
            for key, spec in (("task", _MODEL_INDEX_TASK), ("dataset", _MODEL_INDEX_DATASET)):
                if result.get(key) is None:
                    errors.append(f'"{result_path}.{key}" is required')
                else:
                    errors += fields(result[key], f"{result_path}.{key}", spec)
            source = result.get("source")
            if source is not None:
                errors += fields(source, f"{result_path}.source", _MODEL_INDEX_SOURCE)
                if isinstance(source, dict) and source.get("name") is not None and source.get("url") is None:
                    errors.append(f'"{result_path}.source.url" is required')  # EvalResult's own rule
            problem = array(result.get("metrics"), f"{result_path}.metrics")
            if problem:
                errors += problem
                continue
            for k, metric in enumerate(result["metrics"]):
                errors += fields(metric, f"{result_path}.metrics[{k}]", _MODEL_INDEX_METRIC)
    if not errors:
        try:
            model_index_to_eval_results(model_index)
        except Exception as error:
            errors.append(f'"model-index" cannot be parsed by huggingface_hub: {type(error).__name__}: {error}')
    return errors


@dataclass
class Commit:
    oid: str
    message: str
    parent: str | None
    files: dict[str, bytes]  # the whole tree after this commit


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        return self.commits.get(revision)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **body):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.body = status, message, code, headers or {}, body


class HubServer:
    """The fake Hub, served from a background thread on 127.0.0.1 and a free port (`url`)."""

    def __init__(self, tokens: dict[str, str]):
        self.tokens = dict(tokens)  # token -> user name (the namespace it may write to)
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- inspection helpers for tests --------------------------------------------------------------------------

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of `repo_id` at `revision` (empty if the repository or revision does not exist)."""
        repo = self.repos.get(repo_id)
        commit = repo.resolve(revision) if repo else None
        return dict(commit.files) if commit else {}

    def commit_count(self, repo_id: str) -> int:
        repo = self.repos.get(repo_id)
        return len(repo.commits) if repo else 0

    # -- the API ------------------------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, query: dict[str, list[str]], headers, body: bytes):
        """Returns (status, headers, body bytes); raises HubError for Hub-style error answers."""
        user = self._authenticate(headers)
        parts = raw_path.strip("/").split("/")  # still percent-encoded: a quoted revision may hold "%2F"
        seg = [unquote(p) for p in parts]

        if method == "POST" and seg == ["api", "repos", "create"]:
            return self._create_repo(user, json.loads(body or b"{}"))
        if method == "POST" and seg == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body or b"{}"), headers.get("Accept") or "")
        if len(seg) >= 3 and seg[:2] == ["api", "models"]:
            repo_id, rest = "/".join(seg[2:4]), seg[4:]
            if method == "POST" and len(rest) == 2 and rest[0] == "branch":
                return self._create_branch(user, repo_id, rest[1], json.loads(body or b"{}"))
            if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                return self._preupload(user, repo_id, rest[1], json.loads(body))
            if method == "POST" and len(rest) == 2 and rest[0] == "commit":
                return self._commit(user, repo_id, rest[1], body)
            if method == "GET" and (rest == [] or (len(rest) == 2 and rest[0] == "revision")):
                return self._model_info(user, repo_id, rest[1] if rest else "main")
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                return self._tree(user, repo_id, rest[1], "/".join(rest[2:]), recursive)
        if method in ("GET", "HEAD") and len(seg) >= 5 and seg[2] == "resolve":
            return self._resolve(user, "/".join(seg[:2]), seg[3], "/".join(seg[4:]))
        self.unhandled.append((method, raw_path))
        raise HubError(404, f"Not found: {method} {raw_path}")

    def _authenticate(self, headers) -> str | None:
        authorization = headers.get("Authorization")
        if authorization is None:
            return None
        token = authorization.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def _check_write(self, user: str | None, namespace: str) -> None:
        if user is None:
            raise HubError(401, "You must be authenticated to access this resource")
        if user != namespace:
            raise HubError(403, f"You don't have the rights to write to the namespace {namespace}")

    def _repo(self, user: str | None, repo_id: str) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            raise HubError(404, "Repository not found", code="RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return commit

    def _create_repo(self, user, payload):
        if payload.get("type", "model") != "model":
            raise HubError(400, "This test server only hosts model repositories")
        namespace = payload.get("organization") or user
        self._check_write(user, namespace)
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self.repos:
            raise HubError(409, "You already created this model repo", url=url)  # create_repo reads the url
        repo = Repo(repo_id, private=payload.get("visibility") == "private")
        # A new repository holds one commit (the Hub's holds a .gitattributes).
        first = Commit(_new_oid(), "initial commit", None, {})
        repo.commits[first.oid] = first
        repo.branches["main"] = first.oid
        self.repos[repo_id] = repo
        return _json({"url": url, "name": repo_id, "id": secrets.token_hex(12)})

    def _validate_yaml(self, payload, accept: str):
        content, repo_type = payload.get("content"), payload.get("repoType") or "model"
        if not isinstance(content, str):
            raise HubError(400, '"content" must be a string')
        if repo_type not in CARD_DATA_CLASSES:
            raise HubError(400, f'"repoType" must be one of [{", ".join(CARD_DATA_CLASSES)}]')
        errors = card_metadata_errors(content, repo_type)
        match = REGEX_YAML_BLOCK.search(content)
        empty = match is None or not match.group(2).strip()
        warnings = [{"message": MISSING_METADATA_WARNING}] if empty else []
        if not errors:
            return _json({"errors": [], "warnings": warnings})
        if "text/plain" in accept:  # ModelCard.validate() raises ValueError(response.text)
            text = "\n".join(f"- {error}" for error in errors)
            return 400, {"Content-Type": "text/plain; charset=utf-8"}, text.encode()
        return _json({"errors": [{"message": error} for error in errors], "warnings": warnings}, status=400)

    def _create_branch(self, user, repo_id, branch, payload):
        repo = self._repo(user, repo_id)
        self._check_write(user, repo_id.split("/")[0])
        if branch in repo.branches:
            raise HubError(409, f"Reference refs/heads/{branch} already exists")
        repo.branches[branch] = self._commit_at(repo, payload.get("startingPoint") or "main").oid
        return _json({})

    def _preupload(self, user, repo_id, revision, payload):
        repo = self._repo(user, repo_id)
        self._check_write(user, repo_id.split("/")[0])
        commit = self._commit_at(repo, revision)
        files = []
        for entry in payload["files"]:
            existing = commit.files.get(entry["path"])
            files.append(
                {
                    "path": entry["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_oid(existing) if existing is not None else None,
                }
            )
        return _json({"files": files, "commitOid": commit.oid})

    def _commit(self, user, repo_id, revision, body):
        repo = self._repo(user, repo_id)
        self._check_write(user, repo_id.split("/")[0])
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = lines[0]["value"]
        parent = repo.commits[repo.branches[revision]]
        if header.get("parentCommit") not in (None, parent.oid):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(parent.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file" and value.get("encoding") == "base64":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            else:  # lfsFile would need an LFS store: the preupload answer never asks for one
                raise HubError(400, f"Unsupported commit operation {key!r}")
        adds_readme = any(line["key"] == "file" and line["value"]["path"] == "README.md" for line in lines[1:])
        if adds_readme and "README.md" in files:  # the Hub checks the card's metadata; commits nothing if it is invalid
            errors = card_metadata_errors(files["README.md"].decode("utf-8", errors="replace"))
            if errors:
                raise HubError(400, "Invalid metadata in README.md.\n" + "\n".join(f"- {error}" for error in errors))
        commit = Commit(_new_oid(), header["summary"], parent.oid, files)
        repo.commits[commit.oid] = commit
        repo.branches[revision] = commit.oid
        return _json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self.url}/{repo_id}/commit/{commit.oid}",
                "commitMessage": commit.message,
                "pullRequestUrl": None,
            }
        )

    def _model_info(self, user, repo_id, revision):
        repo = self._repo(user, repo_id)
        commit = self._commit_at(repo, revision)
        return _json(
            {
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.oid,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            }
        )

    def _tree(self, user, repo_id, revision, path, recursive):
        commit = self._commit_at(self._repo(user, repo_id), revision)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"{path} does not exist on {revision}", code="EntryNotFound")
        entries, folders = [], set()
        for file_path in sorted(commit.files):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix) :].split("/")
            for depth in range(1, len(rest)):  # the folders on the way
                folders.add(prefix + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                content = commit.files[file_path]
                entries.append({"type": "file", "oid": git_blob_oid(content), "size": len(content), "path": file_path})
        for folder in sorted(folders):
            if recursive or "/" not in folder[len(prefix) :]:
                entries.append({"type": "directory", "oid": git_blob_oid(folder.encode()), "size": 0, "path": folder})
        return _json(entries)

    def _resolve(self, user, repo_id, revision, path):
        commit = self._commit_at(self._repo(user, repo_id), revision)
        content = commit.files.get(path)
        if content is None:
            raise HubError(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": commit.oid})
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{git_blob_oid(content)}"',
            "X-Repo-Commit": commit.oid,
            "Accept-Ranges": "bytes",
        }
        return 200, headers, content  # the handler leaves the body out of a HEAD answer


def _json(payload, status: int = 200):
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _new_oid() -> str:
    return secrets.token_hex(20)


def _make_handler(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's client expects

        def _serve(self):
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            hub.requests.append((self.command, split.path))
            try:
                with hub._lock:  # one request at a time: the repositories are plain dicts
                    status, headers, payload = hub.handle(
                        self.command, split.path, parse_qs(split.query), self.headers, body
                    )
            except HubError as error:
                status, payload = error.status, json.dumps({"error": error.message, **error.body}).encode()
                headers = {"Content-Type": "application/json", **error.headers}
                if "\n" not in error.message:  # a header holds one line (of latin-1): longer messages are in the body
                    headers["X-Error-Message"] = error.message.encode("ascii", "backslashreplace").decode()
                if error.code:
                    headers["X-Error-Code"] = error.code
            except Exception as error:  # a bug in this server: make it visible to the client, not a hang
                status, payload = 500, json.dumps({"error": f"test server error: {error!r}"}).encode()
                headers = {"Content-Type": "application/json"}
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

        def log_message(self, format, *args):  # keep pytest output clean
            pass

    return Handler
