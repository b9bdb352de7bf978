"""``du``: the bytes per project, run and kind match the objects the store itself lists (a local
folder, and moto S3, fake-gcs-server and Azurite on 127.0.0.1), from one listing, not a request per file."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tests.servers  # noqa: F401 - sets the gcsfs environment before gcsfs is imported
from lightning_tracker import Store, TrackerLogger
from lightning_tracker.cli import main
from lightning_tracker.exceptions import ProjectNotFoundError
from lightning_tracker.manage.du import KINDS, disk_usage, kind_of


def _record(url: str, options: dict[str, Any] | None, project: str, run_name: str, images: int) -> str:
    """A run with metrics, images and TensorBoard events; returns its id."""
    logger = TrackerLogger(url, name=project, run_name=run_name, storage_options=options)
    logger.log_hyperparams({"lr": 0.1})
    for step in range(20):
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    rng = np.random.default_rng(images)
    for i in range(images):  # noise: incompressible, so runs differ in size
        logger.log_image("samples", [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)], step=i)
    logger.finalize("success")
    return logger.version


def _direct_listing(kind: str, url: str, server: Any) -> dict[str, int]:
    """Every object below the store's root and its size, as the server (or the folder) lists it."""
    if kind == "local":
        return {
            os.path.relpath(os.path.join(folder, n), url).replace(os.sep, "/"): os.path.getsize(os.path.join(folder, n))
            for folder, _, names in os.walk(url)
            for n in names
        }
    bucket, root = url.split("://", 1)[1].split("/", 1)
    if kind == "s3":
        import boto3

        client = boto3.client(
            "s3", endpoint_url=server.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{root}/")
        return {o["Key"][len(root) + 1 :]: o["Size"] for page in pages for o in page.get("Contents", [])}
    if kind == "gcs":
        out: dict[str, int] = {}
        token = ""
        while True:
            query = urllib.parse.urlencode({"prefix": f"{root}/", **({"pageToken": token} if token else {})})
            with urllib.request.urlopen(
                f"{server.storage_options['endpoint_url']}/storage/v1/b/{bucket}/o?{query}"
            ) as r:
                page = json.load(r)
            out.update({o["name"][len(root) + 1 :]: int(o["size"]) for o in page.get("items", [])})
            token = page.get("nextPageToken", "")
            if not token:
                return out
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_connection_string(server.storage_options["connection_string"], bucket)
    return {b.name[len(root) + 1 :]: b.size for b in container.list_blobs(name_starts_with=f"{root}/")}


@pytest.mark.parametrize("kind", ["local", "s3", "gcs", "azure"])
def test_du_counts_match_the_objects_the_store_lists(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = None if kind == "local" else request.getfixturevalue(f"{kind}_server")
    protocol = {"local": "", "s3": "s3", "gcs": "gs", "azure": "az"}[kind]
    url = str(tmp_path / "runs") if kind == "local" else f"{protocol}://{server.new_bucket()}/exp"
    options = None if server is None else server.storage_options
    small = _record(url, options, "vision", "small", images=1)
    big = _record(url, options, "vision", "big", images=6)
    other = _record(url, options, "text", "other", images=0)
    store = Store(url, options)
    store.storage.write_bytes("vision/.index/changes/x.json", b"{}")  # the project's own files count too
    store.storage.write_bytes("stray.txt", b"hello")  # and what lies outside every project

    direct = _direct_listing(kind, url, server)
    usage = disk_usage(store)
    assert usage.bytes == sum(direct.values()) and usage.files == len(direct)
    assert (usage.outside_bytes, usage.outside_files) == (5, 1)
    assert [p.project for p in usage.projects] == ["vision", "text"]  # largest first
    vision = usage.projects[0]
    assert vision.bytes == sum(size for path, size in direct.items() if path.startswith("vision/"))
    assert [r.run for r in vision.runs] == [big, small]  # largest first
    for project in usage.projects:
        for run in project.runs:
            files = {p.split("/", 2)[2]: s for p, s in direct.items() if p.startswith(f"{project.project}/{run.run}/")}
            assert run.bytes == sum(files.values()) and run.files == len(files)
            assert run.kinds == {k: sum(s for p, s in files.items() if kind_of(p) == k) for k in KINDS}
            assert run.kinds["metrics"] > 0 and run.kinds["tensorboard"] > 0 and run.kinds["other"] > 0
    assert vision.runs[0].kinds["media"] > vision.runs[1].kinds["media"] > 0
    assert usage.projects[1].runs[0].run == other and usage.projects[1].runs[0].kinds["media"] == 0
    only = disk_usage(store, "text")
    assert [p.to_json() for p in only.projects] == [usage.projects[1].to_json()] and only.outside_bytes == 0


def test_du_of_s3_is_one_listing_whatever_the_number_of_files(serial_s3: Any) -> None:
    url = f"s3://{serial_s3.new_bucket()}/exp"
    for name in ("a", "b", "c"):
        _record(url, serial_s3.storage_options, "p", name, images=3)
    store = Store(url, serial_s3.storage_options)
    before = len(serial_s3.requests)
    usage = disk_usage(store)
    for_store = serial_s3.requests[before:]
    before = len(serial_s3.requests)
    disk_usage(store, "p")
    for_project = serial_s3.requests[before:]
    assert usage.files > 20  # about 9 files a run (git.diff only from a dirty work tree)
    # a listing of the bucket (list-type=2), one page: no request per object, no object read
    assert [(m, q.split("&")[0]) for m, _, q in for_store] == [("GET", "list-type=2")], for_store
    assert [(m, q.split("&")[0]) for m, _, q in for_project] == [("GET", "list-type=2")], for_project


def test_du_of_a_missing_project_names_the_projects(tmp_path: Path) -> None:
    url = str(tmp_path / "runs")
    _record(url, None, "vision", "a", images=0)
    with pytest.raises(ProjectNotFoundError, match=r"no project 'visoin' in .*; its projects: vision"):
        disk_usage(Store(url), "visoin")
    assert main(["du", "-s", url, "-p", "visoin"]) == 2


def test_du_json_has_stable_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(tmp_path / "runs")
    run_id = _record(url, None, "vision", "a", images=1)
    assert main(["du", "-s", url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["store", "bytes", "files", "kinds", "outside_projects", "projects"]
    assert list(doc["kinds"]) == list(KINDS) == ["metrics", "media", "checkpoints", "tensorboard", "other"]
    project = doc["projects"][0]
    assert list(project) == ["project", "bytes", "files", "kinds", "runs"] and project["project"] == "vision"
    assert list(project["runs"][0]) == ["run", "bytes", "files", "kinds"] and project["runs"][0]["run"] == run_id
    # the project's own folders (its index) count for the project, as "other", not for a run
    own = sum(f.stat().st_size for f in (tmp_path / "runs" / "vision").glob(".*/**/*") if f.is_file())
    assert doc["bytes"] == project["bytes"] == project["runs"][0]["bytes"] + own == sum(project["kinds"].values())
