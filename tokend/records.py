"""Plain value classes for the modules every command imports.

``@dataclass`` writes each class's methods as source and compiles them at import:
about half a millisecond a class, and the ``dataclasses`` module itself pulls in
``inspect`` (several milliseconds). For the few types on the path of a warm report,
a class with ``__slots__``, its own ``__init__`` and these bases gives the same
``repr``, equality, copying and (when frozen) immutability and hashing, for nothing.

A subclass lists its fields in ``_FIELDS`` (declaration order: ``repr``, equality
and the positional order of ``__init__``) and sets ``__slots__ = _FIELDS``.
"""

from __future__ import annotations

__all__ = ["FrozenRecord", "Record"]


class Record:
    """``__eq__``, ``__repr__`` and copying over ``_FIELDS``, as a dataclass has them.

    Unhashable, as a mutable dataclass (defining ``__eq__`` sets ``__hash__`` to None).
    """

    __slots__ = ()
    _FIELDS: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__qualname__}({fields})"

    def __reduce__(self) -> tuple[type[Record], tuple[object, ...]]:
        """Copy and pickle through ``__init__`` (frozen records refuse ``setattr``)."""
        return type(self), self._fields()


class FrozenRecord(Record):
    """A :class:`Record` whose fields cannot change once ``__init__`` set them
    (with :meth:`_set`), hashable like a frozen dataclass."""

    __slots__ = ()

    def _set(self, *values: object) -> None:
        """Set every field, in ``_FIELDS`` order; for ``__init__`` only."""
        for name, value in zip(self._FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash(self._fields())
