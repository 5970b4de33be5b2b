"""Step outputs as templates see them: text whose truth follows the words of a condition.

A script's outputs are text (``enabled=false`` is the text ``false``). Python's own truth of
text is "not empty", so ``{{ not nodes.probe.output.enabled }}`` and
``{{ nodes.probe.output.enabled == false }}`` would silently read ``false`` as true. In the
template context every text inside a step's outputs is therefore an ``OutputText``:

- its truth (``not x``, ``x and y``, ``{% if x %}``) is false for the false words
  (``false``/``no``/``off``/``0``/empty/``none``/``null``, any case, spaces around ignored)
  and true for any other text, so ``{% if nodes.x.output.msg %}`` on ordinary text still
  reads as "there is a message";
- compared with a boolean (``x == false``, ``x != true``) it equals ``true`` when it is a true
  word (``true``/``yes``/``on``/``1``) and ``false`` when it is a false word; any other text
  equals neither;
- with anything else it is the plain text it holds (same hash, same comparisons with text).

The wrapping happens on access (``outputs_view``), so building a context stays one object per
step however many outputs there are, and it never reaches what is stored or shown: rendered
text is plain ``str``, and a value evaluated natively (a ``for_each`` list, what a condition
read) is made plain by ``plain`` before it leaves the renderer.

The words are ``spec.template.truth``'s (the rule for a whole condition, which is stricter:
there, text that is neither a true nor a false word is an error).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", "", "none", "null"})


def _word(text: str) -> str:
    return text.strip().lower()


class OutputText(str):
    """Text from a step's outputs; truth and comparison with booleans by the words above."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return _word(self) not in FALSE_WORDS

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool):
            return _word(self) in (TRUE_WORDS if other else FALSE_WORDS)
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        if isinstance(other, bool):
            return not self.__eq__(other)
        return str.__ne__(self, other)

    __hash__ = str.__hash__


class OutputMap(Mapping[str, Any]):
    """A read-only view of a step's outputs (or a mapping inside them) whose text values are
    ``OutputText``, made as they are read."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return outputs_view(self._data[key])

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(plain(self))


def outputs_view(value: Any) -> Any:
    """``value`` (a step's outputs, or a value inside them) as templates see it: text as
    ``OutputText``, mappings as ``OutputMap``, lists with their items so; others unchanged."""
    if isinstance(value, str):
        return value if isinstance(value, OutputText) else OutputText(value)
    if isinstance(value, Mapping):
        return value if isinstance(value, OutputMap) else OutputMap(value)
    if isinstance(value, (list, tuple)):
        return [outputs_view(item) for item in value]
    return value


def plain(value: Any) -> Any:
    """``value`` with every ``OutputText`` back to ``str`` and every ``OutputMap`` a ``dict``
    (lists and tuples become lists): what may be stored, logged or sent as JSON."""
    if isinstance(value, str):
        return str.__str__(value) if type(value) is not str else value
    if isinstance(value, OutputMap):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
