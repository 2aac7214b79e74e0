"""The synchronous client."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Union

import grpc
import numpy as np

from ._errors import VdbError, from_rpc_error
from ._proto import vdb_pb2 as pb
from ._proto import vdb_pb2_grpc as rpc
from ._types import CollectionInfo, Hit, Row, SearchResults

ArrayLike = Union[np.ndarray, Sequence[float], Sequence[Sequence[float]]]

_METRICS = {
    "l2": pb.METRIC_L2,
    "ip": pb.METRIC_INNER_PRODUCT,
    "inner_product": pb.METRIC_INNER_PRODUCT,
    "cosine": pb.METRIC_COSINE,
}
_METRIC_NAMES = {
    pb.METRIC_L2: "l2",
    pb.METRIC_INNER_PRODUCT: "ip",
    pb.METRIC_COSINE: "cosine",
    pb.METRIC_UNSPECIFIED: "l2",
}

#: Rows per Upsert request or Import message, and queries per Search
#: request, by default (the server's limit is 10,000 of each).
DEFAULT_BATCH = 1000


class Client:
    """A connection to one vdbd.

    `address` is `HOST:PORT` or `http://HOST:PORT` (plaintext), or
    `https://HOST:PORT` for TLS, trusting the system's roots or `tls_ca`
    (a PEM file's path or its bytes). `api_key` is sent with every call
    for a server with keys on. `timeout` (seconds) bounds every call
    unless a method is given its own.
    """

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        api_key: Optional[str] = None,
        tls_ca: Optional[Union[str, bytes]] = None,
        timeout: Optional[float] = None,
    ) -> None:
        options = [
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20),
        ]
        if address.startswith("https://"):
            target = address[len("https://") :]
            ca = tls_ca
            if isinstance(ca, str):
                with open(ca, "rb") as f:
                    ca = f.read()
            creds = grpc.ssl_channel_credentials(root_certificates=ca)
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            if tls_ca is not None:
                raise ValueError("tls_ca: given for a plaintext address; use https://HOST:PORT")
            target = address[len("http://") :] if address.startswith("http://") else address
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = rpc.VdbStub(self._channel)
        self._metadata = [("authorization", f"Bearer {api_key}")] if api_key else []
        self._timeout = timeout

    # -- plumbing -----------------------------------------------------------

    def close(self) -> None:
        """Closes the connection."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        try:
            return getattr(self._stub, method)(
                request,
                metadata=self._metadata,
                timeout=timeout if timeout is not None else self._timeout,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # -- collections --------------------------------------------------------

    def create_collection(
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
        config = pb.CollectionConfig(
            dim=dim,
            metric=_metric(metric),
            nlist=nlist,
            nprobe=nprobe,
            index_type=index_type,
            sync=sync,
            flush_rows=flush_rows,
            min_rows_per_list=min_rows_per_list,
            target_recall=target_recall,
        )
        info = self._call("CreateCollection", pb.CreateCollectionRequest(name=name, config=config))
        return _info(info)

    def list_collections(self) -> List[str]:
        """The collections' names."""
        return list(self._call("ListCollections", pb.ListCollectionsRequest()).names)

    def describe(self, name: str, lists: bool = False) -> CollectionInfo:
        """A collection's settings and state; with `lists`, its list sizes."""
        return _info(self._call("DescribeCollection", pb.DescribeCollectionRequest(name=name, lists=lists)))

    def alter(
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
        req = pb.AlterCollectionRequest(
            name=name,
            nprobe=nprobe,
            nlist=nlist,
            flush_rows=flush_rows,
            target_recall=target_recall,
            index_type=index_type,
        )
        return _info(self._call("AlterCollection", req))

    def drop(self, name: str) -> None:
        """Drops a collection and its files."""
        self._call("DropCollection", pb.DropCollectionRequest(name=name))

    # -- rows ---------------------------------------------------------------

    def upsert(
        self,
        collection: str,
        ids: Union[np.ndarray, Sequence[int]],
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
        id_arr, vec = _rows(ids, vectors)
        n = len(id_arr)
        if payloads is not None and len(payloads) != n:
            raise ValueError(f"payloads: {len(payloads)} given for {n} rows")
        if batch_size < 1:
            raise ValueError("batch_size: must be at least 1")
        if n == 0:
            raise ValueError("ids: empty; give at least one row")

        def message(start: int) -> List[Any]:
            end = min(start + batch_size, n)
            ids_part = id_arr[start:end].tolist()
            vecs_part = vec[start:end].tolist()
            return [
                pb.Row(
                    id=ids_part[j],
                    vector=vecs_part[j],
                    payload=None if payloads is None else payloads[start + j],
                )
                for j in range(end - start)
            ]

        if n <= batch_size:
            r = self._call("Upsert", pb.UpsertRequest(collection=collection, rows=message(0)))
            if progress:
                progress(n, n)
            return int(r.count)

        def stream() -> Iterator[Any]:
            for start in range(0, n, batch_size):
                rows = message(start)
                yield pb.ImportRequest(collection=collection, rows=rows)
                if progress:
                    progress(start + len(rows), n)

        r = self._call("Import", stream())
        return int(r.rows)

    def delete(self, collection: str, ids: Union[np.ndarray, Sequence[int]]) -> int:
        """Deletes rows by id (ids that do not exist are ignored); returns
        how many ids were sent."""
        id_list = [int(i) for i in np.asarray(ids, dtype=np.uint64).reshape(-1)]
        r = self._call("Delete", pb.DeleteRequest(collection=collection, ids=id_list))
        return int(r.count)

    def get(self, collection: str, ids: Union[np.ndarray, Sequence[int]]) -> List[Optional[Row]]:
        """The rows of `ids`, in order; `None` for an id not stored."""
        id_list = [int(i) for i in np.asarray(ids, dtype=np.uint64).reshape(-1)]
        r = self._call("Get", pb.GetRequest(collection=collection, ids=id_list))
        found = {
            row.id: Row(
                id=row.id,
                vector=np.asarray(row.vector, dtype=np.float32),
                payload=row.payload if row.HasField("payload") else None,
            )
            for row in r.rows
        }
        return [found.get(i) for i in id_list]

    # -- search -------------------------------------------------------------

    def search(
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
        q = np.asarray(queries, dtype=np.float32)
        single = q.ndim == 1
        if single:
            q = q.reshape(1, -1)
        if q.ndim != 2:
            raise ValueError(f"queries: a vector or a matrix, not {q.ndim}-dimensional")
        if len(q) == 0:
            raise ValueError("queries: empty; give at least one")
        all_hits: List[List[Hit]] = []
        used = 0
        for start in range(0, len(q), max(1, batch_size)):
            req = pb.SearchRequest(
                collection=collection,
                queries=[pb.Vector(values=row) for row in q[start : start + batch_size].tolist()],
                k=k,
                nprobe=nprobe,
                with_payload=with_payload,
                with_vectors=with_vectors,
                exact=exact,
                rerank_epsilon=rerank_epsilon,
            )
            r = self._call("Search", req)
            used = r.nprobe
            for res in r.results:
                all_hits.append([_hit(h, with_payload, with_vectors) for h in res.hits])
        if single:
            return all_hits[0]
        ids = np.full((len(q), k), -1, dtype=np.int64)
        distances = np.full((len(q), k), np.inf, dtype=np.float32)
        for i, hits in enumerate(all_hits):
            for j, h in enumerate(hits[:k]):
                ids[i, j] = h.id
                distances[i, j] = h.distance
        return SearchResults(ids=ids, distances=distances, hits=all_hits, nprobe=used)

    def explain(
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
        vec = np.asarray(query, dtype=np.float32).reshape(-1)
        req = pb.ExplainRequest(
            collection=collection,
            query=pb.Vector(values=vec.tolist()),
            k=k,
            nprobe=nprobe,
            samples=samples,
        )
        return self._call("Explain", req)

    def tune(
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
        req = pb.TuneRequest(
            collection=collection,
            target_recall=target_recall,
            k=k,
            sample=sample,
            nprobes=list(nprobes),
            apply=apply,
        )
        return self._call("Tune", req)

    # -- maintenance --------------------------------------------------------

    def flush(self, collection: str) -> bool:
        """Writes the memtable as a segment (training first if due);
        returns whether anything changed."""
        return self._maintain("Flush", collection)

    def compact(self, collection: str) -> bool:
        """Rewrites segments holding deleted rows and merges small ones."""
        return self._maintain("Compact", collection)

    def retrain(self, collection: str, nlist: Optional[int] = None) -> bool:
        """Trains new centroids (with `nlist` lists, default the configured
        number) and rewrites the collection with them."""
        return self._maintain("Retrain", collection, nlist)

    def rebalance(self, collection: str) -> bool:
        """Splits the largest lists and dissolves the smallest, locally."""
        return self._maintain("Rebalance", collection)

    def _maintain(self, method: str, collection: str, nlist: Optional[int] = None) -> bool:
        r = self._call(method, pb.MaintenanceRequest(collection=collection, nlist=nlist))
        return bool(r.changed)


def _metric(name: str) -> int:
    try:
        return _METRICS[name.lower()]
    except KeyError:
        raise ValueError(f"metric: {name!r} is not one of l2, ip, cosine") from None


def _rows(ids: Any, vectors: Any) -> "tuple[np.ndarray, np.ndarray]":
    id_arr = np.asarray(ids)
    if id_arr.ndim != 1:
        raise ValueError(f"ids: a 1-D array of integers, not {id_arr.ndim}-dimensional")
    if id_arr.size and (not np.issubdtype(id_arr.dtype, np.integer) or id_arr.min() < 0):
        raise ValueError("ids: non-negative integers")
    vec = np.asarray(vectors, dtype=np.float32)
    if vec.ndim == 1 and len(id_arr) == 1:
        vec = vec.reshape(1, -1)
    if vec.ndim != 2:
        raise ValueError(f"vectors: an (n, dim) matrix, not {vec.ndim}-dimensional")
    if len(vec) != len(id_arr):
        raise ValueError(f"vectors: {len(vec)} rows for {len(id_arr)} ids")
    return id_arr.astype(np.uint64), vec


def _hit(h: Any, with_payload: bool, with_vectors: bool) -> Hit:
    return Hit(
        id=int(h.id),
        distance=float(h.distance),
        payload=h.payload if with_payload and h.HasField("payload") else None,
        vector=np.asarray(h.vector, dtype=np.float32) if with_vectors else None,
    )


def _info(m: Any) -> CollectionInfo:
    c, s = m.config, m.stats
    return CollectionInfo(
        name=m.name,
        dim=c.dim,
        metric=_METRIC_NAMES.get(c.metric, "l2"),
        index_type=c.index_type if c.HasField("index_type") else "ivf_flat",
        nlist=c.nlist,
        nprobe=c.nprobe,
        rows=s.rows,
        deleted_rows=s.deleted_rows,
        segments=s.segments,
        memtable_rows=s.memtable_rows,
        generation=s.generation,
        lists=s.lists,
        imbalance=s.imbalance,
        list_sizes=list(m.list_sizes),
    )


__all__ = ["Client", "VdbError"]
