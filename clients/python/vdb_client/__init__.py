"""vdb-client: the Python client of vdb, the persistent IVF vector database.

    from vdb_client import Client

    with Client("127.0.0.1:50051") as vdb:
        vdb.create_collection("images", dim=384, metric="cosine")
        vdb.upsert("images", ids, vectors)          # numpy arrays or lists
        hits = vdb.search("images", query, k=10)   # one query: a list of Hit
        res = vdb.search("images", queries, k=10)  # a matrix: numpy ids/distances

Errors are `VdbError` subclasses, one per status code (`NotFound`,
`InvalidArgument`, `ResourceExhausted`, …). `AsyncClient` has the same
methods as coroutines, for asyncio programs.
"""

from ._aio import AsyncClient
from ._client import Client
from ._errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    VdbError,
)
from ._types import CollectionInfo, Hit, Row, SearchResults

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "Client",
    "CollectionInfo",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Hit",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Row",
    "SearchResults",
    "Unauthenticated",
    "Unavailable",
    "VdbError",
]
