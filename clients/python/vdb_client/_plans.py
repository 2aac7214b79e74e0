"""What each client call sends and how it reads the answers, without
sending anything: each plan is a generator that yields `(method, request)`
for every RPC it needs, receives the response, and returns the call's
result. `Client` runs plans on a blocking channel, `AsyncClient` on an
asyncio one, so both behave alike by construction."""

from __future__ import annotations

from typing import Any, Callable, Generator, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._proto import vdb_pb2 as pb
from ._types import CollectionInfo, Hit, Row, SearchResults

#: One RPC to make: the method's name on the stub, and the request (a
#: message, or an iterator of them for a client stream).
Call = Tuple[str, Any]
Plan = Generator[Call, Any, Any]

ArrayLike = Union[np.ndarray, Sequence[float], Sequence[Sequence[float]]]
Ids = Union[np.ndarray, Sequence[int]]

#: Rows per Upsert request or Import message, and queries per Search
#: request, by default (the server's limit is 10,000 of each).
DEFAULT_BATCH = 1000

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


def create_collection(
    name: str,
    dim: int,
    metric: str,
    nlist: Optional[int],
    nprobe: Optional[int],
    index_type: Optional[str],
    sync: Optional[str],
    flush_rows: Optional[int],
    min_rows_per_list: Optional[int],
    target_recall: Optional[float],
) -> Plan:
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
    info = yield ("CreateCollection", pb.CreateCollectionRequest(name=name, config=config))
    return _info(info)


def list_collections() -> Plan:
    r = yield ("ListCollections", pb.ListCollectionsRequest())
    return list(r.names)


def describe(name: str, lists: bool) -> Plan:
    r = yield ("DescribeCollection", pb.DescribeCollectionRequest(name=name, lists=lists))
    return _info(r)


def alter(
    name: str,
    nprobe: Optional[int],
    nlist: Optional[int],
    flush_rows: Optional[int],
    target_recall: Optional[float],
    index_type: Optional[str],
) -> Plan:
    req = pb.AlterCollectionRequest(
        name=name,
        nprobe=nprobe,
        nlist=nlist,
        flush_rows=flush_rows,
        target_recall=target_recall,
        index_type=index_type,
    )
    r = yield ("AlterCollection", req)
    return _info(r)


def drop(name: str) -> Plan:
    yield ("DropCollection", pb.DropCollectionRequest(name=name))


def upsert(
    collection: str,
    ids: Ids,
    vectors: ArrayLike,
    payloads: Optional[Sequence[Optional[bytes]]],
    batch_size: int,
    progress: Optional[Callable[[int, int], None]],
) -> Plan:
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
        r = yield ("Upsert", pb.UpsertRequest(collection=collection, rows=message(0)))
        if progress:
            progress(n, n)
        return int(r.count)

    def stream() -> Iterator[Any]:
        for start in range(0, n, batch_size):
            rows = message(start)
            yield pb.ImportRequest(collection=collection, rows=rows)
            if progress:
                progress(start + len(rows), n)

    r = yield ("Import", stream())
    return int(r.rows)


def delete(collection: str, ids: Ids) -> Plan:
    r = yield ("Delete", pb.DeleteRequest(collection=collection, ids=_ids(ids)))
    return int(r.count)


def get(collection: str, ids: Ids) -> Plan:
    id_list = _ids(ids)
    r = yield ("Get", pb.GetRequest(collection=collection, ids=id_list))
    found = {
        row.id: Row(
            id=row.id,
            vector=np.asarray(row.vector, dtype=np.float32),
            payload=row.payload if row.HasField("payload") else None,
        )
        for row in r.rows
    }
    return [found.get(i) for i in id_list]


def search(
    collection: str,
    queries: ArrayLike,
    k: int,
    nprobe: Optional[int],
    with_payload: bool,
    with_vectors: bool,
    exact: bool,
    rerank_epsilon: Optional[float],
    batch_size: int,
) -> Plan:
    q = np.asarray(queries, dtype=np.float32)
    single = q.ndim == 1
    if single:
        q = q.reshape(1, -1)
    if q.ndim != 2:
        raise ValueError(f"queries: a vector or a matrix, not {q.ndim}-dimensional")
    if len(q) == 0:
        raise ValueError("queries: empty; give at least one")
    batch_size = max(1, batch_size)
    all_hits: List[List[Hit]] = []
    used = 0
    for start in range(0, len(q), batch_size):
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
        r = yield ("Search", req)
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
    collection: str, query: ArrayLike, k: int, nprobe: Optional[int], samples: Optional[int]
) -> Plan:
    vec = np.asarray(query, dtype=np.float32).reshape(-1)
    req = pb.ExplainRequest(
        collection=collection,
        query=pb.Vector(values=vec.tolist()),
        k=k,
        nprobe=nprobe,
        samples=samples,
    )
    return (yield ("Explain", req))


def tune(
    collection: str,
    target_recall: float,
    k: Optional[int],
    sample: Optional[int],
    nprobes: Iterable[int],
    apply: bool,
) -> Plan:
    req = pb.TuneRequest(
        collection=collection,
        target_recall=target_recall,
        k=k,
        sample=sample,
        nprobes=list(nprobes),
        apply=apply,
    )
    return (yield ("Tune", req))


def maintain(method: str, collection: str, nlist: Optional[int] = None) -> Plan:
    r = yield (method, pb.MaintenanceRequest(collection=collection, nlist=nlist))
    return bool(r.changed)


def _metric(name: str) -> int:
    try:
        return _METRICS[name.lower()]
    except KeyError:
        raise ValueError(f"metric: {name!r} is not one of l2, ip, cosine") from None


def _ids(ids: Ids) -> List[int]:
    return [int(i) for i in np.asarray(ids, dtype=np.uint64).reshape(-1)]


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
