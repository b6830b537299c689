"""Every registered space runs the shared contract suite on each input kind it accepts; adding a space to
SPACES tests it."""

from __future__ import annotations

import pytest

from nasforge.errors import ConfigError
from nasforge.space import SPACES, make_space
from nasforge.testing import SpaceSuite

SHAPES = [(1, 28, 28), (3, 32, 32), (2, 50), (20,)]


def applies(kind: str, shape: tuple[int, ...]) -> bool:
    """Whether the registry entry accepts this input kind (make_space refuses the ones it cannot build)."""
    try:
        make_space({"kind": kind}, shape)
    except ConfigError:
        return False
    return True


CASES = [(kind, shape) for kind in sorted(SPACES) for shape in SHAPES if applies(kind, shape)]
# settings that add dimensions (what nasforge auto turns on), each through the same suite
OPTIONS = {("mlp", (20,)): {"weight_decays": [1e-4, 1e-2, 1.0]},
           ("stage", (2, 50)): {"max_stages": 5, "kernels": [3, 5, 7]}}
ALL = [(k, s, {}) for k, s in CASES] + [(k, s, o) for (k, s), o in OPTIONS.items()]


def test_every_space_accepts_some_input_kind():
    assert {kind for kind, _ in CASES} == set(SPACES)


class TestEverySpace(SpaceSuite):
    @pytest.fixture(params=ALL, ids=[f"{k}-{'x'.join(map(str, s))}{'-' + '-'.join(o) if o else ''}" for k, s, o in ALL])
    def case(self, request):
        return request.param

    @pytest.fixture
    def space(self, case):
        return make_space({"kind": case[0], **case[2]}, case[1])

    @pytest.fixture
    def input_shape(self, case):
        return case[1]


def test_the_suite_catches_a_key_that_sees_dormant_values():
    import json

    from nasforge.space.stage import StageSpace

    class Leaky(StageSpace):
        def key(self, s):
            return json.dumps(sorted(s.items()))

    with pytest.raises(AssertionError, match="changing dormant"):
        SpaceSuite().test_key_is_a_canonical_string_blind_to_dormant_values(Leaky())
