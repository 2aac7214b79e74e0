"""vdb_client against a real vdbd (conftest.py starts it)."""

import numpy as np
import pytest

import vdb_client
from vdb_client import Client, CollectionInfo, Hit, SearchResults

DIM = 16


def data(n, seed=7, centres=8):
    """n rows around `centres` directions, and which centre each is near."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, DIM)).astype(np.float32) * 4
    group = np.arange(n) % centres
    return (c[group] + rng.normal(size=(n, DIM)).astype(np.float32)), group


def test_collection_lifecycle(client, name):
    info = client.create_collection(name, dim=DIM, metric="cosine", nlist=8, nprobe=2)
    assert isinstance(info, CollectionInfo)
    assert (info.name, info.dim, info.metric, info.nlist, info.nprobe) == (name, DIM, "cosine", 8, 2)
    assert info.index_type == "ivf_flat"
    assert name in client.list_collections()
    with pytest.raises(vdb_client.AlreadyExists) as e:
        client.create_collection(name, dim=DIM)
    assert name in str(e.value)
    assert client.alter(name, nprobe=4).nprobe == 4
    client.drop(name)
    assert name not in client.list_collections()
    with pytest.raises(vdb_client.NotFound):
        client.describe(name)


def test_upsert_search_get_delete(client, name):
    client.create_collection(name, dim=DIM, nlist=8, min_rows_per_list=10)
    vectors, group = data(2000)
    ids = np.arange(2000, dtype=np.uint64)
    payloads = [f"group-{g}".encode() for g in group]
    assert client.upsert(name, ids, vectors, payloads=payloads) == 2000
    assert client.flush(name) in (True, False)
    info = client.describe(name, lists=True)
    assert info.rows == 2000 and info.generation >= 1
    assert sum(info.list_sizes) == 2000

    # One query: a list of hits, the row itself first.
    hits = client.search(name, vectors[5], k=5, with_payload=True)
    assert all(isinstance(h, Hit) for h in hits)
    assert hits[0].id == 5 and hits[0].distance == pytest.approx(0.0, abs=1e-4)
    assert all(h.payload == payloads[5] for h in hits)

    # A matrix: numpy ids and distances, exact search as ground truth.
    res = client.search(name, vectors[:50], k=10, nprobe=8)
    truth = client.search(name, vectors[:50], k=10, exact=True)
    assert isinstance(res, SearchResults)
    assert res.ids.shape == (50, 10) and res.distances.dtype == np.float32
    assert np.array_equal(res.ids, truth.ids), "nprobe = nlist is exact"
    assert np.all(np.diff(res.distances, axis=1) >= 0)
    assert res.nprobe == 8

    # Get, in the order asked, None for a missing id.
    rows = client.get(name, [3, 99999, 1])
    assert rows[1] is None
    assert rows[0].id == 3 and np.allclose(rows[0].vector, vectors[3])
    assert rows[2].payload == payloads[1]

    assert client.delete(name, [5]) == 1
    assert all(h.id != 5 for h in client.search(name, vectors[5], k=5))


def test_large_upserts_stream_through_import_with_progress(client, name):
    client.create_collection(name, dim=DIM, nlist=4)
    vectors, _ = data(2500, seed=3)
    seen = []
    n = client.upsert(
        name,
        list(range(2500)),
        vectors.tolist(),
        batch_size=1000,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert n == 2500
    assert seen == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert client.describe(name).rows == 2500


def test_bad_input_is_refused_and_stores_nothing(client, name):
    client.create_collection(name, dim=DIM)
    vectors, _ = data(10)
    client.upsert(name, np.arange(10), vectors)
    with pytest.raises(vdb_client.InvalidArgument) as e:
        client.upsert(name, [11], np.zeros((1, DIM + 1), dtype=np.float32))
    assert "rows[0].vector" in str(e.value) and "expected 16" in str(e.value)
    nan = np.full(DIM, np.nan, dtype=np.float32)
    with pytest.raises(vdb_client.InvalidArgument):
        client.search(name, nan, k=3)
    with pytest.raises(vdb_client.InvalidArgument):
        client.search(name, vectors[0], k=0)
    with pytest.raises(ValueError, match="vectors: 2 rows for 3 ids"):
        client.upsert(name, [1, 2, 3], vectors[:2])
    with pytest.raises(ValueError, match="metric"):
        client.create_collection(name + "x", dim=DIM, metric="manhattan")
    assert client.describe(name).rows == 10


def test_explain_tune_and_maintenance(client, name):
    client.create_collection(name, dim=DIM, nlist=8, min_rows_per_list=10)
    vectors, _ = data(1000, seed=5)
    client.upsert(name, np.arange(1000), vectors)
    client.flush(name)
    ex = client.explain(name, vectors[0], k=5, nprobe=2)
    assert len(ex.probed) == 2 and ex.rows == 1000
    t = client.tune(name, target_recall=0.9, nprobes=[1, 2, 8], sample=50)
    assert [p.nprobe for p in t.points] == [1, 2, 8]
    assert t.points[-1].recall == pytest.approx(1.0)
    client.delete(name, np.arange(100))
    assert client.compact(name) is True
    assert client.describe(name).deleted_rows == 0
    assert client.retrain(name, nlist=4) is True
    assert client.describe(name).lists == 4


def test_api_keys_and_unreachable_servers(server):
    # The test server has no keys: any key is accepted.
    with Client(server, api_key="anything") as c:
        c.list_collections()
    with Client("127.0.0.1:1", timeout=2) as c:
        with pytest.raises(vdb_client.Unavailable):
            c.list_collections()
    with pytest.raises(ValueError, match="tls_ca"):
        Client("127.0.0.1:1", tls_ca=b"pem")
