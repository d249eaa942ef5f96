"""Many fnmatch globs matched against one path at once: the rule tables' path tests."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import NamedTuple

MAX_PARENTS = 4096
"""Directories whose verdict a :class:`GlobSet` keeps; past that it starts afresh."""
MAX_PARENT = 4096
"""Longest directory kept (a longer one, only a hostile layer's, is matched whole: the
memo must not hold thousands of megabyte names)."""


class _Children(NamedTuple):
    """What a glob set says of any name in one directory (a name holds no ``/``)."""

    names: frozenset[str]
    """A child of exactly this name matches."""
    prefixes: tuple[str, ...]
    """A child whose name starts so matches."""
    suffixes: tuple[str, ...]
    """A child whose name ends so matches."""
    inner: tuple[str, ...]
    """A child whose name holds one of these matches."""
    other: re.Pattern[str] | None
    """The globs left undecided: the whole path must match this."""


_ALL = _Children(frozenset(), ("",), (), (), None)
"""Every child matches."""


class GlobSet:
    """A list of fnmatch globs (``*`` crosses ``/``), matched as cheaply as each allows: a
    glob without wildcards is a set lookup, ``/etc/cron.*`` a prefix, ``*/.bashrc`` a
    suffix, ``*/htdocs/*`` a substring, and only the rest a regular expression (one
    expression of many ``.*`` alternatives cost 6 us a path; these tests cost a tenth).

    A walk asks for thousands of names in the same directory. What the globs can say of
    the names in one directory is worked out once for it (:meth:`children`): for most
    directories, that no name there matches at all.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        exact, prefixes, suffixes, inner, other = set(), [], [], [], []
        for glob in dict.fromkeys(patterns):
            body = glob.strip("*")
            if any(ch in body for ch in "*?[") or not body:
                other.append(glob)
            elif glob.startswith("*") and glob.endswith("*") and len(glob) > 1:
                inner.append(body)
            elif glob.startswith("*"):
                suffixes.append(body)
            elif glob.endswith("*"):
                prefixes.append(body)
            else:
                exact.add(glob)
        self.exact = frozenset(exact)
        self.prefixes = tuple(prefixes)
        self.suffixes = tuple(suffixes)
        self.inner_parts = tuple(inner)
        self.inner = re.compile("|".join(re.escape(part) for part in inner)) if inner else None
        self.other = _expression(other)
        # A glob ``A/*`` holds for a child of D exactly when it holds for ``D/``: the ``/``
        # it needs is one of D's or the one before the name.
        self._other_by_parent = _expression([g for g in other if g.endswith("/*")])
        self._other_by_path = _expression([g for g in other if not g.endswith("/*")])
        self._parents: dict[str, _Children | None] = {}

    def match(self, text: str) -> bool:
        cut = text.rfind("/")
        if cut < 0 or cut == len(text) - 1 or cut > MAX_PARENT:
            return self.whole(text)  # no name after a "/" (not a child of a directory), or a huge one
        parent = text[:cut]
        try:
            children = self._parents[parent]
        except KeyError:
            if len(self._parents) >= MAX_PARENTS:
                self._parents.clear()
            children = self._parents[parent] = self.children(parent)
        if children is None:
            return False
        name = text[cut + 1 :]
        return (
            name in children.names
            or name.startswith(children.prefixes)
            or name.endswith(children.suffixes)
            or (children.inner != () and any(part in name for part in children.inner))
            or (children.other is not None and children.other.match(text) is not None)
        )

    def whole(self, text: str) -> bool:
        """The globs against the whole of ``text``, nothing kept."""
        return (
            text in self.exact
            or text.startswith(self.prefixes)
            or text.endswith(self.suffixes)
            or (self.inner is not None and self.inner.search(text) is not None)
            or (self.other is not None and self.other.match(text) is not None)
        )

    def children(self, parent: str) -> _Children | None:
        """What the globs say of ``parent + "/" + name`` for any non-empty name without
        ``/`` (None: no such path matches)."""
        here = parent + "/"
        if (
            here.startswith(self.prefixes)
            or any(part in here for part in self.inner_parts)
            or (self._other_by_parent is not None and self._other_by_parent.match(here) is not None)
        ):
            return _ALL
        # (What is left after ``here`` may hold a "/": no name then matches it.)
        names = {glob[len(here) :] for glob in self.exact if glob.startswith(here)}
        prefixes = tuple(p[len(here) :] for p in self.prefixes if p.startswith(here))
        suffixes, inner = [], []
        for suffix in self.suffixes:
            head, slash, tail = suffix.rpartition("/")
            if not slash:
                suffixes.append(suffix)  # within the name: the name's own "/" is not in it
            elif tail and parent.endswith(head):
                names.add(tail)
        for part in self.inner_parts:
            head, slash, tail = part.rpartition("/")
            if not slash:
                inner.append(part)
            elif tail and parent.endswith(head):
                prefixes += (tail,)  # across the last "/": the name starts with the rest
        if not (names or prefixes or suffixes or inner or self._other_by_path is not None):
            return None
        return _Children(frozenset(names), prefixes, tuple(suffixes), tuple(inner), self._other_by_path)


def _expression(globs: Sequence[str]) -> re.Pattern[str] | None:
    """The globs as one expression that matches the whole text (None for no globs)."""
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs), re.DOTALL)
