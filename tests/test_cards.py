"""The task cards: complete, consistent with the code that reads them, and the only place a task is named."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from ganops import cards
from ganops.cards import CARDS, ImageToImage, TaskCard, card
from ganops.errors import ConfigError
from ganops.models.unet import HEADS

SRC = Path(__file__).resolve().parents[1] / "src" / "ganops"
# A task's own files may name it; every other module reads its card.
OWN_FILES = {SRC / "cards.py", *(SRC / "tasks").glob("*.py")}
IMAGE_TASKS = [name for name, c in CARDS.items() if c.image_to_image]


def test_a_card_missing_a_fact_fails_when_it_is_made_naming_the_fact():
    facts = dataclasses.asdict(card("superres").image_to_image, dict_factory=dict)
    facts["baseline"] = card("superres").image_to_image.baseline
    del facts["tiled"]
    with pytest.raises(TypeError, match="tiled"):
        ImageToImage(**facts)
    with pytest.raises(TypeError, match="primary"):
        TaskCard(name="x", summary="", input_name="x", model_name=None, image_to_image=None)


def test_a_card_whose_fields_and_mask_disagree_is_refused():
    superres = card("superres").image_to_image
    with pytest.raises(ValueError, match="'mask' exactly when the input has a mask"):
        dataclasses.replace(superres, fields=("image", "mask"))
    with pytest.raises(ValueError, match="routes live under /v1/"):
        dataclasses.replace(superres, route="/upscale")


def test_an_unknown_task_lists_the_tasks():
    with pytest.raises(ConfigError, match="unknown task 'denoise'; valid: colorize, generate, inpaint"):
        card("denoise")
    with pytest.raises(ConfigError, match="task generate samples from noise"):
        cards.image_to_image("generate")


@pytest.mark.parametrize("task", IMAGE_TASKS)
def test_each_card_names_a_head_and_encodes_numpy_and_torch_alike(task):
    facts = card(task).image_to_image
    assert facts.head in HEADS
    rng = np.random.default_rng(0)
    images = (rng.random((2, 3, 8, 12), dtype=np.float32) * 2 - 1).astype(np.float32)
    hole = (rng.random((2, 1, 8, 12)) < 0.4).astype(np.float32) if facts.mask else None
    from_numpy = facts.encode(images, hole)
    from_torch = facts.encode(torch.from_numpy(images), None if hole is None else torch.from_numpy(hole))
    assert from_numpy.shape == (2, facts.input_channels(3), 8, 12)
    assert np.array_equal(from_numpy, from_torch.numpy())
    out = facts.baseline.run(from_numpy, 3, 2 if facts.scaled else 1)
    assert out.shape == (2, 3, 8 * (2 if facts.scaled else 1), 12 * (2 if facts.scaled else 1))
    assert out.dtype == np.float32 and np.abs(out).max() <= 1


def _task_name_uses(path: Path, root: Path = SRC) -> list[str]:
    """Comparisons with a task's name and dicts keyed by one, in ``path``: what the cards replace."""
    names = set(CARDS)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            literals = [
                e.value
                for o in operands
                for e in (o.elts if isinstance(o, (ast.Tuple, ast.List, ast.Set)) else [o])
                if isinstance(e, ast.Constant)
            ]
            if names & set(literals):
                found.append(
                    f"{path.relative_to(root)}:{node.lineno} compares with {sorted(names & set(literals))}"
                )
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if names & keys:
                found.append(
                    f"{path.relative_to(root)}:{node.lineno} a table keyed by {sorted(names & keys)}"
                )
    return found


def test_nothing_outside_a_tasks_own_files_branches_on_its_name_or_keys_a_table_by_it():
    offenders = [
        use for path in sorted(SRC.rglob("*.py")) if path not in OWN_FILES for use in _task_name_uses(path)
    ]
    assert offenders == []
    page = (SRC / "serve" / "static" / "restore.html").read_text()
    assert not [name for name in CARDS if f'"{name}"' in page]


def test_the_check_sees_a_branch_on_a_task_name(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        'TILES = {"superres": True}\nif task == "inpaint" or task in ("colorize",):\n    pass\n'
    )
    assert len(_task_name_uses(planted, tmp_path)) == 3
