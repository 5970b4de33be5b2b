"""Masking secret values in everything opsflow stores or shows: log lines, outputs, errors.

A `Masker` is built from the plaintext values a job may see and replaces, with ``***``, every
occurrence of each value and of the ways a script commonly re-prints it:

- the value itself, and with surrounding whitespace stripped;
- base64, standard and URL-safe alphabets, with or without padding, also *inside* a longer
  base64 text (``base64 <<< "user:$PASSWORD"``): the value's bytes may start at any of the
  three byte offsets of a 3-byte group, so each alignment gets its own pattern (the characters
  that encode only the value's bits) plus the one partial character on either side, which
  carries some of the value's bits and is masked when it is consistent with them; up to two
  ``=`` of padding right after such a match are masked with it;
- hex, lower and upper case;
- URL encoding (``quote`` with and without ``/`` kept, ``quote_plus``; upper and lower case
  ``%xx``);
- JSON string escaping (ASCII-only and not), and the value with its line breaks written as a
  literal backslash-n;
- for a multi-line value (a PEM key), every line of at least 4 characters on its own, because
  logs arrive line by line; and the lines of its base64 wrapped at 76 and 64 columns
  (``base64`` and PEM wrapping).

Values shorter than `MIN_LENGTH` (4) characters are not masked where they appear inside longer
text: a 3-character value would hide every occurrence of common words and numbers. They are
masked only when they make up the whole text (a whole log line, a whole output value).

Speed: every literal goes into one regular expression shaped as a trie (shared prefixes merged),
so scanning a line costs about one pass over it whatever the number of secrets; a line without
any match is returned after that single search. Only lines that do match pay for the exact
step, which finds the longest match at every position so that two overlapping encodings of
different secrets are both covered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 4

_STANDARD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_URL_SAFE = _STANDARD[:62] + "-_"
_WRAP_COLUMNS = (76, 64)
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


@dataclass(frozen=True)
class _Edges:
    """For a base64 middle: the characters allowed just before and just after it.

    An empty string means no partial character on that side (the value's bits start or end
    exactly on a character boundary).
    """

    before: str
    after: str


def literal_variants(value: str) -> set[str]:
    """The exact strings that `Masker` masks for ``value``, other than the base64 patterns.

    Empty for values shorter than `MIN_LENGTH`. Public so tests and callers can see the list.
    """
    if len(value) < MIN_LENGTH:
        return set()
    data = value.encode("utf-8")
    found = {
        value,
        value.strip(),
        data.hex(),
        data.hex().upper(),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        value.replace("\n", "\\n"),
        value.replace("\r\n", "\\r\\n").replace("\n", "\\n"),
    }
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value)):
        found.add(encoded)
        found.add(_PERCENT_ESCAPE.sub(lambda m: m.group(0).lower(), encoded))
    if "\n" in value or "\r" in value:
        for line in value.splitlines():
            found.update((line, line.strip()))
    # Blank variants (a line of spaces in a multi-line value) would mask indentation everywhere.
    return {text for text in found if len(text) >= MIN_LENGTH and text.strip()}


def base64_patterns(value: str) -> dict[str, _Edges]:
    """For each byte alignment (0, 1, 2) and alphabet: the base64 characters that encode only
    bits of ``value``, with the partial characters allowed on each side.

    A value at byte offset ``k`` of a longer text starts at bit ``8k``; base64 characters cover
    6 bits each, so the characters wholly inside the value's bits are the same whatever
    surrounds it. Those form the literal; the characters straddling its first and last bit
    are known only in part, and `_Edges` lists every character consistent with the known bits.
    """
    if len(value) < MIN_LENGTH:
        return {}
    data = value.encode("utf-8")
    bits = "".join(f"{byte:08b}" for byte in data)
    patterns: dict[str, _Edges] = {}
    for offset in (0, 1, 2):
        start, end = 8 * offset, 8 * offset + len(bits)
        first = -(-start // 6)  # the first character wholly inside the value's bits
        stop = end // 6  # one past the last such character
        for alphabet in (_STANDARD, _URL_SAFE):
            middle = "".join(
                alphabet[int(bits[6 * i - start : 6 * i - start + 6], 2)]
                for i in range(first, stop)
            )
            if len(middle) < MIN_LENGTH:
                continue
            before = ""
            if start % 6:
                known = bits[: 6 * first - start]
                unknown = 6 - len(known)
                before = "".join(
                    alphabet[(high << len(known)) | int(known, 2)] for high in range(2**unknown)
                )
            after = ""
            if end % 6:
                known = bits[6 * stop - start :]
                unknown = 6 - len(known)
                after = "".join(
                    alphabet[(int(known, 2) << unknown) | low] for low in range(2**unknown)
                )
            _merge(patterns, middle, _Edges(before, after))
            if offset == 0:
                _add_wrapped_lines(patterns, middle, after)
    return patterns


def _add_wrapped_lines(patterns: dict[str, _Edges], middle: str, after: str) -> None:
    """The lines of the aligned encoding wrapped as ``base64`` (76) and PEM (64) wrap it: each
    full line is a literal; the last one may end in the value's partial character."""
    for columns in _WRAP_COLUMNS:
        if len(middle) <= columns:
            continue
        lines = [middle[i : i + columns] for i in range(0, len(middle), columns)]
        for line in lines[:-1]:
            _merge(patterns, line, _Edges("", ""))
        if len(lines[-1]) >= MIN_LENGTH:
            _merge(patterns, lines[-1], _Edges("", after))


def _merge(patterns: dict[str, _Edges], middle: str, edges: _Edges) -> None:
    known = patterns.get(middle)
    if known is not None:
        edges = _Edges(_union(known.before, edges.before), _union(known.after, edges.after))
    patterns[middle] = edges


def _union(a: str, b: str) -> str:
    return "".join(sorted(set(a) | set(b)))


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex matching any of ``words``, preferring the longest at a position.

    A trie's children differ in their first character, so at most one branch can go on at any
    point; the optional tail ``(?:...)?`` is greedy, so a longer word wins over its prefix.
    Chains without branches are merged into one escaped literal (a radix tree), which keeps
    the pattern, and the regex compiler's recursion, shallow.
    """
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = True
    return _branch(root)


def _branch(node: Mapping[str, Any]) -> str:
    ends = "" in node
    parts: list[str] = []
    for char in sorted(k for k in node if k):
        run, child = [char], node[char]
        while "" not in child and len(child) == 1:
            (next_char,) = child
            run.append(next_char)
            child = child[next_char]
        parts.append(re.escape("".join(run)) + _branch(child))
    if not parts:
        return ""
    if len(parts) == 1 and not ends:
        return parts[0]
    return "(?:" + "|".join(parts) + ")" + ("?" if ends else "")


class Masker:
    """Replaces secret values, and their common encodings, with ``***``.

    Build one per job (or per execution) from the values it may see; `mask` is safe to call
    from several threads. See the module docstring for what is masked and what is not.
    """

    def __init__(self, values: Iterable[str]) -> None:
        self._whole: frozenset[str] = frozenset()
        edges: dict[str, _Edges] = {}
        literals: set[str] = set()
        whole: set[str] = set()
        for value in values:
            if not value:
                continue
            whole.add(value)
            literals |= literal_variants(value)
            for middle, edge in base64_patterns(value).items():
                _merge(edges, middle, edge)
        literals |= edges.keys()
        self._whole = frozenset(whole)
        self._edges = edges
        self._search: re.Pattern[str] | None = None
        self._every: re.Pattern[str] | None = None
        if literals:
            pattern = _trie_pattern(sorted(literals))
            self._search = re.compile(pattern)
            # The same trie inside a lookahead matches at every position, overlapping ones too.
            self._every = re.compile(f"(?=({pattern}))")

    def __bool__(self) -> bool:
        """Whether there is anything to mask at all."""
        return bool(self._whole)

    def mask_all(self, texts: list[str]) -> list[str]:
        """`mask` of each of ``texts``, in order; ``texts`` itself when none holds anything to
        mask. A value or an encoding found in one text is also found in the texts joined, so
        one search over the join (and one set test for whole values) clears a batch of log
        lines at the cost of one scan, instead of a call per line; a batch with a hit is
        masked line by line, exactly as `mask` does."""
        if self._whole.isdisjoint(texts) and (
            self._search is None or self._search.search("\n".join(texts)) is None
        ):
            return texts
        return [self.mask(text) for text in texts]

    def mask(self, text: str) -> str:
        """``text`` with every secret value and listed encoding replaced by ``***``."""
        if text in self._whole:
            return MASK
        if self._search is None or self._every is None:
            return text
        first = self._search.search(text)
        if first is None:
            return text
        spans: list[tuple[int, int]] = []
        for match in self._every.finditer(text, first.start()):
            start = match.start()
            found = match.group(1)
            end = start + len(found)
            edge = self._edges.get(found)
            if edge is not None:
                if start > 0 and text[start - 1] in edge.before:
                    start -= 1
                if end < len(text) and text[end] in edge.after:
                    end += 1
                # The padding after a base64 text holding the value goes with it: left in
                # sight it tells the value's length modulo 3 (``***==``).
                padding = 0
                while padding < 2 and end < len(text) and text[end] == "=":
                    end += 1
                    padding += 1
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
        pieces: list[str] = []
        done = 0
        for start, end in spans:
            pieces.append(text[done:start])
            pieces.append(MASK)
            done = end
        pieces.append(text[done:])
        return "".join(pieces)

    def mask_value(self, value: Any) -> Any:
        """``value`` with every string inside it masked: dict keys and values, list and tuple
        items, recursively. A number whose text contains a secret becomes the masked string;
        other values come back unchanged. For step outputs and error details."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask_value(k): self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_value(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.mask_value(item) for item in value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = str(value)
            masked = self.mask(text)
            return value if masked == text else masked
        return value
