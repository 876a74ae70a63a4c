"""`model_cards/`: its templates are the ones the package renders, and the reference runs' cards are what the code
renders now from their recorded results, with metadata the Hub accepts."""

from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hf_viewmaker.hub.model_card import TEMPLATES

from helpers import load_script
from hub_server import card_metadata_errors

MODEL_CARDS = Path(__file__).resolve().parents[1] / "model_cards"
render_reference_cards = load_script(Path(__file__).resolve().parents[1] / "tools" / "render_reference_cards.py")


def test_the_templates_are_the_packages():
    assert (MODEL_CARDS / "templates").resolve() == TEMPLATES.resolve()
    kinds = {path.stem for path in TEMPLATES.glob("*.md")}
    assert kinds == {"pretraining_run", "linear_probe", "converted_checkpoint"}


@pytest.mark.parametrize("name", render_reference_cards.reference_runs())
def test_the_reference_cards_are_rendered_from_their_records(name):
    rendered = render_reference_cards.render(name)
    assert len(rendered) == 2  # the pretraining run and its linear probe
    for file, text in rendered.items():
        assert (MODEL_CARDS / file).read_text() == text, f"{file} is stale: run python tools/render_reference_cards.py"
        assert card_metadata_errors(text) == [], file
        card = ModelCard(text)
        assert card.data.eval_results, file  # every reference card reports what its run measured
        assert "{{" not in text and "Not recorded" not in text, file


def test_there_is_a_reference_run_per_domain():
    domains = {name.split("_viewmaker")[0] for name in render_reference_cards.reference_runs()}
    assert domains == {"fashion_mnist", "asterisk", "basic_motions"}
