"""templatekit.records.Record behaves as typing.NamedTuple where templatekit relies on it."""

from __future__ import annotations

import copy
import json
import pickle
from functools import cached_property
from typing import NamedTuple

import pytest

from templatekit.records import Record


class Point(Record):
    x: int
    label: str = "p"
    tags: tuple[str, ...] = ()


class Twin(NamedTuple):
    x: int
    label: str = "p"
    tags: tuple[str, ...] = ()


class Marked(Point):
    @cached_property
    def doubled(self) -> int:
        return self.x * 2


@pytest.mark.parametrize("arguments", [((1,), {}), ((1, "q"), {}), ((1,), {"tags": ("a",)}), ((), {"x": 2})])
def test_construction_and_the_tuple_it_is_match_namedtuple(arguments) -> None:
    args, kwargs = arguments
    point, twin = Point(*args, **kwargs), Twin(*args, **kwargs)
    assert tuple(point) == tuple(twin) and point == twin and hash(point) == hash(twin)
    assert repr(point) == repr(twin).replace("Twin", "Point")
    assert point._fields == twin._fields and point._field_defaults == twin._field_defaults
    assert point._asdict() == twin._asdict() and point._replace(label="r") == twin._replace(label="r")
    assert json.dumps(point) == json.dumps(twin)
    assert pickle.loads(pickle.dumps(point)) == point and type(copy.deepcopy(point)) is Point


def test_fields_by_name_pattern_matching_and_subclass_methods() -> None:
    marked = Marked(3, tags=("t",))
    assert (marked.x, marked.label, marked.tags, marked.doubled) == (3, "p", ("t",), 6)
    match marked:
        case Point(x, label):
            assert (x, label) == (3, "p")
    with pytest.raises(AttributeError):
        marked.x = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    "make",
    [lambda: Point(), lambda: Point(1, "a", (), 4), lambda: Point(1, colour="red"), lambda: Point(1)._replace(y=2)],
    ids=["missing", "too many", "unknown keyword", "unknown field"],
)
def test_bad_arguments_raise_as_namedtuple_does(make) -> None:
    with pytest.raises((TypeError, ValueError)):
        make()


def test_a_record_without_fields_is_refused() -> None:
    with pytest.raises(TypeError, match="needs fields"):

        class Empty(Record):
            pass
