"""The model-card checks of tests/hub_server.py, through the real `huggingface_hub` client: `/api/validate-yaml`
(`ModelCard.validate()`, and `HfApi.create_commit`'s own check before it uploads) and the commit endpoint, which
refuses a README.md with invalid metadata and commits nothing."""

import json
import re
import urllib.error
import urllib.request

import huggingface_hub
import pytest
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import BadRequestError

from hub_server import MISSING_METADATA_WARNING, HubServer, card_metadata_errors, point_this_process_at

TOKEN = "hf_alicesWriteToken0123456789abcdefXYZ"
REPO_ID = "alice/cards"

VALID_MODEL_INDEX = """\
model-index:
- name: tiny-viewmaker
  results:
  - task:
      type: image-classification
    dataset:
      name: CIFAR-10
      type: uoft-cs/cifar10
      split: test
    metrics:
    - type: accuracy
      value: 0.81
"""
# (case, README.md, what the error must name)
INVALID_CARDS = [
    (
        "malformed YAML",
        "---\nlicense: apache-2.0\ntags: [viewmaker, contrastive-learning\n---\n\n# A card\n",
        "Invalid YAML in the metadata of README.md: while parsing a flow sequence",
    ),
    ("front matter not a mapping", "---\n- viewmaker\n- contrastive-learning\n---\n\n# A card\n", '"metadata" must be'),
    (
        "model-index without a dataset type",
        "---\n" + VALID_MODEL_INDEX.replace("      type: uoft-cs/cifar10\n", "") + "---\n\n# A card\n",
        '"model-index[0].results[0].dataset.type" is required',
    ),
    ("tags not a list", "---\nlicense: apache-2.0\ntags: 3\n---\n\n# A card\n", '"tags" must be an array'),
]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The server, and this process pointed at it, online (as tests/test_hub_push.py does)."""
    with HubServer(tokens={TOKEN: "alice"}) as server:
        point_this_process_at(server, monkeypatch, tmp_path / "hf_home", TOKEN)
        yield server


@pytest.fixture
def api(hub) -> HfApi:
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo(REPO_ID)
    api.create_commit(
        REPO_ID,
        [huggingface_hub.CommitOperationAdd("README.md", b"---\nlicense: mit\n---\n\n# The first card\n")],
        commit_message="first card",
    )
    return api


class RawCard(ModelCard):
    """A card sent as written: `ModelCard(content)` itself refuses to load invalid metadata."""

    def __init__(self, content: str):
        self.raw = content

    def __str__(self) -> str:
        return self.raw


def valid_card() -> ModelCard:
    data = ModelCardData(
        model_name="tiny-viewmaker",
        library_name="transformers",
        license="apache-2.0",
        tags=["viewmaker", "self-supervised", "contrastive-learning"],
        datasets=["uoft-cs/cifar10"],
        metrics=["accuracy"],
        pipeline_tag="image-feature-extraction",
        base_model="alice/resnet18-cifar",
        eval_results=[
            EvalResult(
                task_type="image-classification",
                dataset_type="uoft-cs/cifar10",
                dataset_name="CIFAR-10",
                dataset_split="test",
                metric_type="accuracy",
                metric_name="linear probe: top-1 accuracy",
                metric_value=0.81,
            )
        ],
    )
    return ModelCard.from_template(data, model_id="tiny-viewmaker")


def _readme(content: str | bytes) -> huggingface_hub.CommitOperationAdd:
    return huggingface_hub.CommitOperationAdd("README.md", content.encode() if isinstance(content, str) else content)


def _state(hub: HubServer):
    return hub.commit_count(REPO_ID), hub.repos[REPO_ID].branches["main"], hub.files(REPO_ID)


def test_a_valid_card_validates_and_commits(api, hub):
    card = valid_card()
    assert "model-index" in str(card) and card_metadata_errors(str(card)) == []
    card.validate()  # raises on any error

    commit = api.create_commit(REPO_ID, [_readme(str(card))], commit_message="the card")
    assert hub.repos[REPO_ID].branches["main"] == commit.oid
    pushed = ModelCard(hub.files(REPO_ID)["README.md"].decode())
    assert pushed.data.eval_results[0].metric_value == 0.81
    assert pushed.data.tags == ["viewmaker", "self-supervised", "contrastive-learning"]


def test_a_card_without_metadata_is_valid_and_the_hub_warns(api, hub):
    assert card_metadata_errors("# Just a title\n") == [] and card_metadata_errors("---\n---\n# Empty\n") == []
    RawCard("# Just a title\n").validate()
    with pytest.warns(UserWarning, match="Empty or missing yaml metadata"):
        commit = api.create_commit(REPO_ID, [_readme("# Just a title\n")], commit_message="no metadata")
    assert hub.repos[REPO_ID].branches["main"] == commit.oid


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in INVALID_CARDS], ids=[c[0] for c in INVALID_CARDS])
def test_invalid_metadata_fails_validate_and_is_not_committed(api, hub, monkeypatch, content, expected):
    assert any(expected in error for error in card_metadata_errors(content)), card_metadata_errors(content)
    with pytest.raises(ValueError, match=re.escape(expected)):
        RawCard(content).validate()

    before = _state(hub)
    # HfApi checks the card with /api/validate-yaml before it uploads anything...
    with pytest.raises(ValueError, match="Invalid metadata in README.md") as checked:
        api.create_commit(REPO_ID, [_readme(content), _readme_neighbour()], commit_message="bad card")
    assert expected in str(checked.value) and isinstance(checked.value.__cause__, BadRequestError)
    assert _state(hub) == before

    # ...and the commit endpoint refuses it all the same (a client that skips that check).
    monkeypatch.setattr(HfApi, "_validate_yaml", lambda self, *args, **kwargs: None)
    with pytest.raises(BadRequestError, match="Invalid metadata in README.md") as refused:
        api.create_commit(REPO_ID, [_readme(content), _readme_neighbour()], commit_message="bad card")
    assert refused.value.response.status_code == 400 and expected in str(refused.value)
    assert _state(hub) == before


def _readme_neighbour() -> huggingface_hub.CommitOperationAdd:
    return huggingface_hub.CommitOperationAdd("config.json", b"{}")


def test_a_valid_card_made_invalid_in_memory_fails_validate(hub):
    card = valid_card()
    card.data.tags = 3
    with pytest.raises(ValueError, match='"tags" must be an array'):
        card.validate()


def test_validate_yaml_answers_json_errors_unless_asked_for_text(hub):
    def post(content: str, accept: str | None = None):
        request = urllib.request.Request(
            f"{hub.url}/api/validate-yaml",
            data=json.dumps({"repoType": "model", "content": content}).encode(),
            headers={"Content-Type": "application/json", **({"Accept": accept} if accept else {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read().decode()

    status, kind, body = post("---\ntags: [a, 1]\nlicense: [mit]\n---\n")
    assert (status, kind) == (400, "application/json")
    assert json.loads(body) == {
        "errors": [{"message": '"license" must be a string'}, {"message": '"tags[1]" must be a string'}],
        "warnings": [],
    }
    status, kind, body = post("---\ntags: [a, 1]\n---\n", accept="text/plain")
    assert (status, kind, body) == (400, "text/plain; charset=utf-8", '- "tags[1]" must be a string')
    assert post(str(valid_card()))[::2] == (200, json.dumps({"errors": [], "warnings": []}))
    assert json.loads(post("# No metadata")[2]) == {"errors": [], "warnings": [{"message": MISSING_METADATA_WARNING}]}


def test_only_the_root_readme_is_checked(api, hub):
    bad = INVALID_CARDS[-1][1]
    api.create_commit(
        REPO_ID, [huggingface_hub.CommitOperationAdd("docs/README.md", bad.encode())], commit_message="docs"
    )
    assert hub.files(REPO_ID)["docs/README.md"] == bad.encode()


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ("license: 2.0", ['"license" must be a string']),
        ("pipeline_tag: [feature-extraction]", ['"pipeline_tag" must be a string']),
        ("pipeline_tag: not-a-pipeline-of-the-hub", []),  # huggingface_hub has no list of them: not checked
        ("datasets: [uoft-cs/cifar10, 10]", ['"datasets[1]" must be a string']),
        ("metrics: accuracy", ['"metrics" must be an array']),
        ("base_model: [google/vit-base-patch16-224, gpt2]", []),
        ("base_model: 3", ['"base_model" must be one of [string, array]']),
        ("base_model: /workspace/merged", ["base_model with value '/workspace/merged' is not valid"]),
        ("language: [en, 1]", ['"language[1]" must be a string']),
        ("license: null", []),
        ("model-index: {name: m}", ['"model-index" must be an array']),
        ("model-index: []", ['"model-index" must contain at least 1 items']),
        (VALID_MODEL_INDEX.replace("value: 0.81", "name: acc"), ['"model-index[0].results[0].metrics[0].value" is']),
        (VALID_MODEL_INDEX.replace("split: test", "config: 3"), ['"model-index[0].results[0].dataset.config" must']),
        (VALID_MODEL_INDEX.replace("- name: tiny-viewmaker\n ", "-"), ['"model-index[0].name" is required']),
    ],
)
def test_card_metadata_errors_name_the_field(metadata, expected):
    errors = card_metadata_errors(f"---\n{metadata}\n---\n\n# A card\n")
    assert len(errors) == len(expected) and all(e in error for e, error in zip(expected, errors)), errors
