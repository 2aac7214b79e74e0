"""What the client returns: plain dataclasses and numpy arrays, not
protobuf messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np


@dataclass(frozen=True)
class Hit:
    """One search result."""

    id: int
    #: Smaller is closer: squared L2, negative inner product, or 1 − cosine.
    distance: float
    payload: Optional[bytes] = None
    vector: Optional[np.ndarray] = None


@dataclass(frozen=True)
class Row:
    """A stored row, as `get` returns it."""

    id: int
    vector: np.ndarray
    payload: Optional[bytes] = None


@dataclass(frozen=True)
class SearchResults:
    """The results of several queries: `ids[i, j]` and `distances[i, j]` are
    query i's j-th nearest row (ids −1 and distances +inf where fewer than
    k rows were found), `hits[i]` the same as `Hit`s with payloads when
    asked for."""

    ids: np.ndarray
    distances: np.ndarray
    hits: List[List[Hit]]
    #: Lists probed per query.
    nprobe: int


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's settings and state (`describe`)."""

    name: str
    dim: int
    metric: str
    index_type: str
    nlist: int
    nprobe: int
    rows: int
    deleted_rows: int
    segments: int
    memtable_rows: int
    generation: int
    lists: int
    imbalance: float
    #: Rows per list, when `describe(..., lists=True)`.
    list_sizes: List[int] = field(default_factory=list)
