"""``Record``: the base of templatekit's immutable records, a named tuple that is cheap to define.

``class Span(Record): start: int; end: int`` behaves as ``typing.NamedTuple`` does where
templatekit uses it: a tuple (equality, hashing, unpacking, JSON as a list, pickling), fields
read by name, defaults, keyword construction, ``_replace``, ``_asdict``, ``_fields`` and the
same ``repr``; a subclass of a record adds methods and cached properties only.  Type checkers
see ``typing.NamedTuple`` itself.  Modules that define records use ``from __future__ import
annotations`` (the fields are read from the class body's ``__annotations__``).

Why not ``typing.NamedTuple``: a lint run defines about 40 record classes at import, and a
NamedTuple class costs ~0.17 ms on first import (``collections.namedtuple`` compiles its
constructor with ``eval``, and each string annotation becomes a compiled ``ForwardRef``); a
cold lint of Gemma 3 took ~3 ms less with this metaclass, which defines one in ~20 µs and
compiles nothing.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

__all__ = ["Record"]


class _RecordType(type):
    """Turns the annotated names of a class body into tuple fields (in order, with defaults)."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _RecordType:
        if bases != (tuple,) and not any(getattr(base, "_fields", ()) for base in bases):
            if "__annotations__" not in namespace:  # Python 3.14 evaluates them lazily without the import
                raise TypeError(f"record {name} needs fields: annotate them under `from __future__ import annotations`")
            fields = tuple(namespace["__annotations__"])
            namespace["_field_defaults"] = {field: namespace[field] for field in fields if field in namespace}
            for index, field in enumerate(fields):
                namespace[field] = property(itemgetter(index), doc=f"Field {index} of {name}.")
            namespace.update(__slots__=(), _fields=fields, __match_args__=fields)
        return super().__new__(mcs, name, bases, namespace)


class _Record(tuple, metaclass=_RecordType):  # type: ignore[misc] - a tuple of the subclass's fields
    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _field_defaults: dict[str, Any] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        fields = cls._fields
        if len(args) == len(fields) and not kwargs:
            return tuple.__new__(cls, args)
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments but {len(args)} were given")
        values = list(args)
        for field in fields[len(args) :]:
            if field in kwargs:
                values.append(kwargs.pop(field))
            elif field in cls._field_defaults:
                values.append(cls._field_defaults[field])
            else:
                raise TypeError(f"{cls.__name__}() missing required argument: {field!r}")
        if kwargs:
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {next(iter(kwargs))!r}")
        return tuple.__new__(cls, values)

    def _replace(self, **changes: Any) -> Any:
        """A copy with the fields named in ``changes`` replaced."""
        unknown = changes.keys() - set(self._fields)
        if unknown:
            raise ValueError(f"got unexpected field names: {sorted(unknown)!r}")
        return tuple.__new__(type(self), [changes.get(field, value) for field, value in zip(self._fields, self)])

    def _asdict(self) -> dict[str, Any]:
        """The fields by name, in order."""
        return dict(zip(self._fields, self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{field}={value!r}' for field, value in zip(self._fields, self))})"

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)


if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    Record = _Record
