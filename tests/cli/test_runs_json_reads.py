"""``runs --json`` reads the runs once: counted at a moto S3 server on 127.0.0.1.

The records and the table's order come from the same read of the project (its index, the
``run.json`` of each live run, its edits), so printing JSON costs no more requests than
printing the table.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from lightning_tracker import Store
from lightning_tracker.cli import main
from tests.read.counting_s3 import CountingS3Server
from tests.read.test_index import write_runs


def _requests(server: CountingS3Server, argv: list[str]) -> tuple[list[tuple[str, str]], str]:
    """The requests one command made, and what it printed."""
    before = server.count()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*argv, "--storage-options", json.dumps(server.storage_options)]) == 0
    return server.requests[before:], printed.getvalue()


@pytest.mark.parametrize("options", [[], ["--sort=-loss"], ["--where", "loss>0.2", "--sort", "loss"]])
def test_runs_json_reads_the_runs_once(counting_s3: CountingS3Server, options: list[str]) -> None:
    url = f"s3://{counting_s3.new_bucket()}/exp"
    store = Store(url, counting_s3.storage_options)
    write_runs(store.storage, [f"r{i:02d}" for i in range(12)], loss=0.5)
    write_runs(store.storage, ["low"], loss=0.1)
    write_runs(store.storage, ["live"], status="running", loss=0.9)
    store.table("p")  # the index is built: what follows reads it as any later command does

    table, _ = _requests(counting_s3, ["runs", "-s", url, "-p", "p", *options])
    asked, printed = _requests(counting_s3, ["runs", "-s", url, "-p", "p", "--json", *options])

    index_listings = [path for method, path in asked if method == "GET" and "prefix=exp%2Fp%2F.index%2F" in path]
    live_reads = [path for method, path in asked if method == "GET" and path.endswith("/exp/p/live/run.json")]
    assert len(index_listings) == 1, "\n".join(map(str, asked))
    assert len(live_reads) == 1, "\n".join(map(str, asked))
    assert len(asked) <= len(table), f"--json: {len(asked)} requests, the table: {len(table)}"
    ids = [record["id"] for record in json.loads(printed)["runs"]]
    if "--where" in options:
        assert ids[-1] == "live" and "low" not in ids and len(ids) == 13
    elif "--sort=-loss" in options:
        assert ids[0] == "live" and ids[-1] == "low" and len(ids) == 14
    else:
        assert sorted(ids) == sorted([f"r{i:02d}" for i in range(12)] + ["low", "live"])
