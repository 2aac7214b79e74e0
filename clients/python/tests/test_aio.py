"""AsyncClient against the same real vdbd: the same plans as Client, run
on a grpc.aio channel (each test runs its own event loop)."""

import asyncio

import numpy as np
import pytest

import vdb_client
from vdb_client import AsyncClient, SearchResults

from test_client import DIM, data


def test_async_calls_match_the_sync_ones(server, client, name):
    async def go():
        async with AsyncClient(server, timeout=60) as vdb:
            info = await vdb.create_collection(name, dim=DIM, nlist=8, min_rows_per_list=10)
            assert info.name == name and info.nlist == 8
            vectors, _ = data(2500, seed=11)
            seen = []
            n = await vdb.upsert(
                name, np.arange(2500), vectors, batch_size=1000, progress=lambda d, t: seen.append(d)
            )
            assert n == 2500 and seen == [1000, 2000, 2500]
            await vdb.flush(name)
            hits = await vdb.search(name, vectors[9], k=3)
            assert hits[0].id == 9
            res = await vdb.search(name, vectors[:20], k=5, nprobe=8)
            assert isinstance(res, SearchResults) and res.ids.shape == (20, 5)
            assert (await vdb.get(name, [9]))[0].id == 9
            with pytest.raises(vdb_client.InvalidArgument):
                await vdb.search(name, vectors[0], k=0)
            with pytest.raises(vdb_client.NotFound):
                await vdb.describe(name + "_missing")
            return res

    res = asyncio.run(go())
    # The blocking client sees the same collection and the same answers.
    vectors, _ = data(2500, seed=11)
    again = client.search(name, vectors[:20], k=5, nprobe=8)
    assert np.array_equal(res.ids, again.ids)
    assert client.describe(name).rows == 2500
