"""Reading a manifest's canonical text without parsing it (for browsing large versions).

Parsing a manifest builds an object per file: on 100k files that is most of what opening it
costs. The canonical text (sorted paths, sorted keys, no spaces) of a manifest of files
(format 1: no links or folder entries) without references can be read in place instead:
every entry is `"path":{...,"size":N}`, entries are joined by `,`, and `"size":` occurs
nowhere else (a path's quotes are escaped, digests are hex, chunk lists hold no objects;
only references have nested objects, their pins).
So the entry owning a position is the one whose `"size":` comes next, an entry boundary is
a `},"` right after such a size, and a path is looked up by bisection over the bytes,
reading a few paths on the way. Counting the files in a span is one `bytes.count`.
"""

from __future__ import annotations

import json
from itertools import accumulate
from operator import add, itemgetter, methodcaller

from .manifest import FORMAT_FILES

HEAD = b'{"entries":{'
TAIL = b'},"format":%d}' % FORMAT_FILES  # files only: every entry has a size
SIZE = b'"size":'
_DIGITS = frozenset(b"0123456789")


class ManifestText:
    """A canonical manifest without references, as its text (see the module's docstring).

    Positions are byte offsets of entry starts (the quote opening the entry's path);
    `self.end` stands for "after the last entry".
    """

    def __init__(self, text: bytes):
        self.text = text
        self.first = len(HEAD)
        # where an entry after the last would start (no entry: the first's place)
        self.end = len(text) - len(TAIL) + 1 if len(text) > len(HEAD + TAIL) else self.first

    @classmethod
    def of(cls, text: bytes) -> ManifestText | None:
        """None for text this cannot read in place (references, or not canonical)."""
        if not (text.startswith(HEAD) and text.endswith(TAIL)) or b'"pin":' in text:
            return None
        return cls(text)

    def __len__(self) -> int:
        return self.text.count(SIZE)

    def count(self, start: int, stop: int) -> int:
        """Entries starting in [start, stop)."""
        return self.text.count(SIZE, start, stop)

    # -- one entry -----------------------------------------------------------------------

    def path(self, start: int) -> str:
        """The path of the entry starting at `start`."""
        text = self.text
        end = text.index(b'":{', start + 1)
        raw = text[start + 1 : end]
        if b"\\" not in raw:
            return raw.decode("ascii")
        # escapes (a quote, non-ASCII): read the JSON string itself, to its real end
        path, _ = json.JSONDecoder().raw_decode(text[start : self.next(start)].decode("ascii"))
        return str(path)

    def size(self, start: int) -> int:
        """The size of the entry starting at `start`."""
        k = self.text.index(SIZE, start) + len(SIZE)
        return int(self.text[k : self.text.index(b"}", k)])

    def next(self, start: int) -> int:
        """Where the entry after the one starting at `start` starts (or `self.end`)."""
        return self._after(self.text.index(SIZE, start))

    def first_key_ending(self, suffix: str) -> str | None:
        """The first path ending with `suffix` (ASCII); None if none does. In this text
        only a path is followed by an unescaped `":{`."""
        k = self.text.find(suffix.encode("ascii") + b'":{', self.first)
        if k < 0:
            return None
        return self.path(self._owner(self.text.index(SIZE, k)))

    def entry_json(self, start: int) -> bytes:
        """`{"path":{...}}`: the entry starting at `start` as a JSON object of its own."""
        return b"{" + self.text[start : self.next(start) - 1] + b"}"

    def _after(self, size_at: int) -> int:
        """The start of the entry after the one whose `"size":` is at `size_at`."""
        close = self.text.index(b"}", size_at + len(SIZE))
        return close + 2 if close + 2 < self.end else self.end

    def _owner(self, size_at: int) -> int:
        """The start of the entry whose `"size":` is at `size_at`."""
        text, j = self.text, size_at
        while True:
            j = text.rfind(b'},"', self.first, j)
            if j < 0:
                return self.first
            if self._is_boundary(j):
                return j + 2
            # a `},"` at the end of a path (`"x},":{`): not between two entries

    def _is_boundary(self, j: int) -> bool:
        """Whether the `},"` at j closes an entry: digits, then `"size":`, come before it."""
        text, k = self.text, j
        while k > 0 and text[k - 1] in _DIGITS:
            k -= 1
        return k < j and text[k - len(SIZE) : k] == SIZE

    # -- bisection -------------------------------------------------------------------------

    def lower_bound(self, key: str, lo: int | None = None, hi: int | None = None) -> int:
        """The start of the first entry (in [lo, hi)) whose path is >= key, or `hi`.

        Keeps: every entry ending at or before `lo` has a smaller path; every entry
        starting at or after `hi` a path >= key. A probe reads the entry owning the next
        `"size":`; each step moves `lo` past it or `hi` down to it.
        """
        lo = self.first if lo is None else lo
        hi = self.end if hi is None else hi
        while lo < hi:
            mid = (lo + hi) // 2
            k = self.text.find(SIZE, mid, hi)
            if k < 0:
                hi = mid  # no entry starts in [mid, hi)
                continue
            start = self._owner(k)
            if start >= hi:
                hi = mid
            elif self.path(start) >= key:
                hi = start
            else:
                lo = self._after(k)
        return lo

    # -- every entry at once ---------------------------------------------------------------

    def index(self) -> tuple[list[int], list[int]]:
        """Every entry's start (and `self.end` after them) and size, in a few passes of C
        code: cut at each `"size":`, read the number at the head of each piece, and find
        the `},"` after it."""
        text = self.text
        if self.end <= self.first:
            return [self.end], []
        pieces = text.split(SIZE)  # pieces[i + 1] starts with entry i's size
        sizes = list(map(int, map(itemgetter(0), map(methodcaller("partition", b"}"), pieces[1:]))))
        # pieces[i + 1] begins at len(pieces[0..i]) + (i + 1) * len(SIZE); entry i + 1
        # starts 2 bytes after the '}' that ends entry i's size
        offsets = accumulate(map(len, pieces[1:-1]), initial=len(pieces[0]) + len(SIZE))
        gaps = map(methodcaller("find", b"}"), pieces[1:-1])
        steps = range(2, 2 + len(SIZE) * len(pieces), len(SIZE))
        starts = [self.first, *map(add, map(add, offsets, gaps), steps), self.end]
        return starts, sizes
