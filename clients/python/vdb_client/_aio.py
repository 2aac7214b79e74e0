"""The asyncio client: `Client`'s calls, awaited, on a `grpc.aio`
channel. Both run the same plans (`_plans.py`)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

import grpc

from . import _plans
from ._client import OPTIONS, connection
from ._errors import from_rpc_error
from ._plans import DEFAULT_BATCH, ArrayLike, Ids, Plan
from ._proto import vdb_pb2_grpc as rpc
from ._types import CollectionInfo, Hit, Row, SearchResults


class AsyncClient:
    """A connection to one vdbd for asyncio programs; the same arguments
    and methods as `Client`, each a coroutine:

        async with AsyncClient("127.0.0.1:50051") as vdb:
            hits = await vdb.search("docs", query, k=10)

    Create it inside the running event loop.
    """

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        api_key: Optional[str] = None,
        tls_ca: Optional[Union[str, bytes]] = None,
        timeout: Optional[float] = None,
    ) -> None:
        target, creds = connection(address, tls_ca)
        if creds is None:
            self._channel = grpc.aio.insecure_channel(target, options=OPTIONS)
        else:
            self._channel = grpc.aio.secure_channel(target, creds, options=OPTIONS)
        self._stub = rpc.VdbStub(self._channel)
        self._metadata = [("authorization", f"Bearer {api_key}")] if api_key else []
        self._timeout = timeout

    # -- plumbing -----------------------------------------------------------

    async def close(self) -> None:
        """Closes the connection."""
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _run(self, plan: Plan) -> Any:
        """Makes the plan's calls one after another; its result."""
        try:
            method, request = next(plan)
            while True:
                try:
                    response = await getattr(self._stub, method)(
                        request, metadata=self._metadata, timeout=self._timeout
                    )
                except grpc.RpcError as e:
                    raise from_rpc_error(e) from None
                method, request = plan.send(response)
        except StopIteration as done:
            return done.value

    # -- collections --------------------------------------------------------

    async def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "l2",
        nlist: Optional[int] = None,
        nprobe: Optional[int] = None,
        index_type: Optional[str] = None,
        sync: Optional[str] = None,
        flush_rows: Optional[int] = None,
        min_rows_per_list: Optional[int] = None,
        target_recall: Optional[float] = None,
    ) -> CollectionInfo:
        """Creates a collection of `dim`-dimensional vectors. `metric` is
        "l2", "ip" or "cosine"; `index_type` "ivf_flat" (default) or
        "ivf_rabitq"; unset settings take the server's defaults."""
        return await self._run(_plans.create_collection(name, dim, metric, nlist, nprobe, index_type, sync, flush_rows, min_rows_per_list, target_recall))

    async def list_collections(self) -> List[str]:
        """The collections' names."""
        return await self._run(_plans.list_collections())

    async def describe(self, name: str, lists: bool = False) -> CollectionInfo:
        """A collection's settings and state; with `lists`, its list sizes."""
        return await self._run(_plans.describe(name, lists))

    async def alter(
        self,
        name: str,
        nprobe: Optional[int] = None,
        nlist: Optional[int] = None,
        flush_rows: Optional[int] = None,
        target_recall: Optional[float] = None,
        index_type: Optional[str] = None,
    ) -> CollectionInfo:
        """Changes settings; `None` keeps one. A new nlist or index type
        retrains in the background."""
        return await self._run(_plans.alter(name, nprobe, nlist, flush_rows, target_recall, index_type))

    async def drop(self, name: str) -> None:
        """Drops a collection and its files."""
        return await self._run(_plans.drop(name))

    # -- rows ---------------------------------------------------------------

    async def upsert(
        self,
        collection: str,
        ids: Ids,
        vectors: ArrayLike,
        payloads: Optional[Sequence[Optional[bytes]]] = None,
        batch_size: int = DEFAULT_BATCH,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> int:
        """Writes rows (replacing rows of the same ids) and returns how many
        were written, once durable. `vectors` is an (n, dim) array (or
        nested lists), `ids` n non-negative integers, `payloads` n bytes
        or None. Up to `batch_size` rows go in one request; more are
        streamed through one Import call in messages of `batch_size`,
        calling `progress(rows_sent, rows_total)` after each."""
        return await self._run(_plans.upsert(collection, ids, vectors, payloads, batch_size, progress))

    async def delete(self, collection: str, ids: Ids) -> int:
        """Deletes rows by id (ids that do not exist are ignored); returns
        how many ids were sent."""
        return await self._run(_plans.delete(collection, ids))

    async def get(self, collection: str, ids: Ids) -> List[Optional[Row]]:
        """The rows of `ids`, in order; `None` for an id not stored."""
        return await self._run(_plans.get(collection, ids))

    # -- search -------------------------------------------------------------

    async def search(
        self,
        collection: str,
        queries: ArrayLike,
        k: int = 10,
        nprobe: Optional[int] = None,
        with_payload: bool = False,
        with_vectors: bool = False,
        exact: bool = False,
        rerank_epsilon: Optional[float] = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> Union[List[Hit], SearchResults]:
        """The `k` nearest stored rows to each query. One query (a 1-D
        array or a list of floats): a list of `Hit`s, nearest first. A
        matrix of queries (n, dim): `SearchResults` with numpy `ids` and
        `distances` of shape (n, k) and the `Hit`s, sent `batch_size`
        queries a request. `nprobe` unset uses the collection's default;
        `exact` compares every row (ground truth)."""
        return await self._run(_plans.search(collection, queries, k, nprobe, with_payload, with_vectors, exact, rerank_epsilon, batch_size))

    async def explain(
        self,
        collection: str,
        query: ArrayLike,
        k: int = 10,
        nprobe: Optional[int] = None,
        samples: Optional[int] = None,
    ) -> Any:
        """How one search went: the lists probed, ranked, what each held and
        cost, and what the nearest lists not probed would have added (the
        `ExplainResponse` message, typed by the generated stubs)."""
        return await self._run(_plans.explain(collection, query, k, nprobe, samples))

    async def tune(
        self,
        collection: str,
        target_recall: float,
        k: Optional[int] = None,
        sample: Optional[int] = None,
        nprobes: Iterable[int] = (),
        apply: bool = False,
    ) -> Any:
        """Measures recall@k and latency over an nprobe sweep on stored rows
        as queries and recommends the smallest nprobe reaching
        `target_recall`; `apply` makes it the default (the `TuneResponse`
        message)."""
        return await self._run(_plans.tune(collection, target_recall, k, sample, nprobes, apply))

    # -- maintenance --------------------------------------------------------

    async def flush(self, collection: str) -> bool:
        """Writes the memtable as a segment (training first if due);
        returns whether anything changed."""
        return await self._run(_plans.maintain("Flush", collection))

    async def compact(self, collection: str) -> bool:
        """Rewrites segments holding deleted rows and merges small ones."""
        return await self._run(_plans.maintain("Compact", collection))

    async def retrain(self, collection: str, nlist: Optional[int] = None) -> bool:
        """Trains new centroids (with `nlist` lists, default the configured
        number) and rewrites the collection with them."""
        return await self._run(_plans.maintain("Retrain", collection, nlist))

    async def rebalance(self, collection: str) -> bool:
        """Splits the largest lists and dissolves the smallest, locally."""
        return await self._run(_plans.maintain("Rebalance", collection))
