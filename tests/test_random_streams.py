"""The table of random streams: one number per stream, and the same draws as before it was a table."""

import ast
from pathlib import Path

import pytest
import torch

from ganops.runtime import Stream, seeded_generator, stream

# The numbers every stream had before they were named: renumbering one changes every model's bits.
NUMBERS_SO_FAR = {
    Stream.LATENT_NOISE: 1,
    Stream.GRID_Z: 2,
    Stream.SHUFFLE: 3,
    Stream.EVALUATOR_SHUFFLE: 4,
    Stream.EVALUATE_Z: 5,
    Stream.EXPORT_PARITY_Z: 6,
    Stream.AUGMENT: 8,
    Stream.LIVE_Z: 9,
    Stream.DROPOUT: 10,
    Stream.SELF_SUPERVISED: 11,
    Stream.SELF_CHECK: 12,
    Stream.DEGRADE: 13,
    Stream.EVALSET: 14,
    Stream.LIVE_DEGRADE: 15,
}
ROOT = Path(__file__).resolve().parents[1]


def test_every_stream_has_its_own_number():
    # __members__ lists aliases too: a second name for a taken number would show up here (and
    # @enum.unique refuses it at import time).
    numbers = [member.value for member in Stream.__members__.values()]
    assert len(numbers) == len(set(numbers)) == len(NUMBERS_SO_FAR)


def test_streams_keep_the_numbers_they_had():
    assert {member: member.value for member in Stream} == NUMBERS_SO_FAR


@pytest.mark.parametrize("which", list(Stream))
@pytest.mark.parametrize("more", [(), (0,), (37,)])
def test_a_named_stream_draws_what_its_bare_number_drew(which, more):
    named, bare = stream(7, which, *more), seeded_generator(7, NUMBERS_SO_FAR[which], *more)
    assert named.initial_seed() == bare.initial_seed()
    assert torch.equal(named.get_state(), bare.get_state())
    assert torch.equal(torch.randn(5, generator=named), torch.randn(5, generator=bare))


def test_no_code_names_a_stream_by_its_bare_number():
    """Only runtime.py may call seeded_generator: everything else goes through stream(seed, Stream.X)."""
    callers = []
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]:
        if path.name == "runtime.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "seeded_generator":
                callers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "stream":
                if len(node.args) < 2 or isinstance(node.args[1], ast.Constant):
                    callers.append(f"{path.relative_to(ROOT)}:{node.lineno} (stream without Stream.X)")
    assert callers == []
