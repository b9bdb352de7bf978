"""The media panel of the self-contained report, in a real headless Chromium, and its payload.

One local store is written per module: run-a logs images at steps 0, 10, 20, a table and
a text (with HTML in it); run-b images at steps 0 and 15 (captions with HTML); run-c none.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import uuid
from typing import Any

import pytest

from lightning_tracker import Store, TrackerLogger
from lightning_tracker.format.layout import MEDIA_KINDS, MediaKind
from lightning_tracker.read.cache import ReadCache
from lightning_tracker.report import build_payload, write_report
from lightning_tracker.report.data import payload_bytes
from lightning_tracker.report.media import EMBED_IMAGES, EMBED_ROWS, EMBED_STEPS, MediaFiles, media_part
from tests.helpers import tiny_model_class, trainer
from tests.report.media_runs import add_media, copy_store, images, table, write_run
from tests.report.pages import open_page

HOSTILE = ["<b>bold</b>", '<img src=x onerror="window.__pwned=1">', "plain"]
TEXT_KEY = "val/<u>text</u>"


def media_store(save_dir: str) -> None:
    write_run(
        save_dir,
        "m",
        "run-a",
        [
            *images("samples", [0, 10, 20], 3, "a"),
            table("scores", 20, {"name": ["x", "y", "z", "w"], "score": [10, 9, 100, None]}),
            table(TEXT_KEY, 20, {"prompt": HOSTILE, "tokens": ["10", "9", "100"]}, kind="text"),
        ],
    )
    write_run(save_dir, "m", "run-b", images("samples", [0, 15], 3, "<i>b</i>"))
    write_run(save_dir, "m", "run-c", [])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("media")
    media_store(str(folder / "runs"))
    return "file://" + write_report(Store(str(folder / "runs")), folder / "report.html")


# per run column of a key's panel: the run, the step it shows and its images with their captions
PANEL = """(key) => {
    const block = [...document.querySelectorAll('.media-key')].find((b) => b.dataset.key === key);
    return {step: block.querySelector('.media-step').textContent, slider: block.querySelector('.media-slider').value,
      runs: [...block.querySelectorAll('.media-run')].map((c) => ({
        run: c.querySelector('.media-run-name').textContent, at: (c.querySelector('.media-at') || {}).textContent,
        empty: Boolean(c.querySelector('p.empty')),
        images: [...c.querySelectorAll('figure')].map((f) => {
          const img = f.querySelector('img'), cap = f.querySelector('figcaption');
          return {src: img.src, width: img.naturalWidth, complete: img.complete, caption: cap.textContent,
                  under: cap.getBoundingClientRect().top >= img.getBoundingClientRect().bottom};
        })}))};
}"""
TABLE = """([key, run]) => {
    const block = [...document.querySelectorAll('.media-key')].find((b) => b.dataset.key === key);
    const col = [...block.querySelectorAll('.media-run')].find((c) => c.dataset.run.endsWith(run) ||
      c.querySelector('.media-run-name').textContent === run);
    return [...col.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent));
}"""


def _set_step(page: Any, key: str, position: int) -> None:
    page.evaluate(
        """([key, i]) => {
            const block = [...document.querySelectorAll('.media-key')].find((b) => b.dataset.key === key);
            const slider = block.querySelector('.media-slider');
            slider.value = String(i);
            slider.dispatchEvent(new Event('input'));
        }""",
        [key, position],
    )


def _decoded(page: Any) -> None:
    page.wait_for_function("[...document.querySelectorAll('#media-panels img')].every((i) => i.complete)")


def test_images_of_one_step_side_by_side_with_a_slider_and_captions_under_them(
    report: str, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    open_page(page, report)
    assert page.is_visible("#media-section")
    note = page.inner_text("#media-note")
    assert f"at most {EMBED_STEPS} steps" in note and f"× {EMBED_IMAGES} images per key and run" in note
    assert f"first {EMBED_ROWS} rows" in note and "lightning-tracker serve shows all at full size" in note
    _decoded(page)
    shown = page.evaluate(PANEL, "samples")
    assert shown["step"] == "step 20 (4 of 4)", "opens on the last step of the union 0, 10, 15, 20"
    a, b = shown["runs"]
    assert (a["run"], a["at"]) == ("run-a", None)
    assert (b["run"], b["at"]) == ("run-b", " step 15"), "run-b shows its nearest earlier step"
    assert [i["caption"] for i in a["images"]] == ["a s20 #0", "a s20 #1", "a s20 #2"]
    assert [i["caption"] for i in b["images"]] == ["<i>b</i> s15 #0", "<i>b</i> s15 #1", "<i>b</i> s15 #2"]
    for image in a["images"] + b["images"]:
        assert image["complete"] and image["width"] == 8 and image["under"], image
        assert image["src"].startswith("data:image/"), "embedded: the report opens offline"

    _set_step(page, "samples", 0)
    _decoded(page)
    first = page.evaluate(PANEL, "samples")
    assert first["step"] == "step 0 (1 of 4)"
    assert [i["caption"] for i in first["runs"][0]["images"]] == ["a s0 #0", "a s0 #1", "a s0 #2"]
    assert {i["src"] for i in first["runs"][0]["images"]}.isdisjoint(i["src"] for i in a["images"]), "other pictures"
    assert all(i["width"] == 8 for r in first["runs"] for i in r["images"])
    _set_step(page, "samples", 1)  # step 10: run-b has nothing there, so shows its step 0
    ten = page.evaluate(PANEL, "samples")
    assert ten["runs"][1]["at"] == " step 0" and ten["runs"][1]["images"][0]["caption"] == "<i>b</i> s0 #0"
    assert page.evaluate("document.querySelectorAll('#media-panels i, #media-panels b, #media-panels u').length") == 0

    page.click("#select-none")
    assert page.is_hidden("#media-section"), "hidden while no selected run has media"
    page.fill("#filter", "run-c")
    page.click("#select-all")
    assert page.inner_text("#runs-count").endswith("1 selected") and page.is_hidden("#media-section")
    assert page.inner_text("#runs-count").startswith("1 of ") and "1 runs" not in page.inner_text("#runs-count")
    assert errors == []


def test_tables_sort_by_a_clicked_column_and_stored_text_stays_text(
    report: str, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    open_page(page, report)
    page.wait_for_selector(".media-table")
    assert page.evaluate(TABLE, ["scores", "run-a"]) == [["x", "10"], ["y", "9"], ["z", "100"], ["w", ""]]
    header = "[data-key='scores'] th[data-col='1']"
    page.click(header)
    assert page.evaluate(TABLE, ["scores", "run-a"])[:3] == [["y", "9"], ["x", "10"], ["z", "100"]], "numerically"
    page.click(header)
    assert page.evaluate(TABLE, ["scores", "run-a"]) == [["z", "100"], ["x", "10"], ["y", "9"], ["w", ""]]
    assert page.get_attribute(header, "class") == "text sorted-desc"

    rows = page.evaluate(TABLE, [TEXT_KEY, "run-a"])
    assert [r[0] for r in rows] == HOSTILE, "stored text is shown as text"
    page.evaluate(
        """(key) => [...document.querySelectorAll('.media-key')].find((b) => b.dataset.key === key)
            .querySelector("th[data-col='1']").click()""",
        TEXT_KEY,
    )
    assert [r[1] for r in page.evaluate(TABLE, [TEXT_KEY, "run-a"])] == ["9", "10", "100"], "numeric text numerically"
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('#media-panels b, #media-panels u').length") == 0
    assert page.evaluate("[...document.querySelectorAll('#media-panels img')].every((i) => i.src.startsWith('data:'))")
    assert errors == []


def _payload(page: bytes) -> dict[str, Any]:
    match = re.search(rb'<script id="lt-data" type="application/gzip-base64">([^<]+)</script>', page)
    assert match
    return dict(json.loads(gzip.decompress(base64.b64decode(match[1]))))


def test_a_report_with_many_images_embeds_a_capped_share_and_says_what_is_left_out(
    tmp_path: Any, browser_page: tuple[Any, list[str]]
) -> None:
    save_dir = str(tmp_path / "runs")
    steps, per_step = list(range(0, 500, 10)), 20  # 1,000 distinct images
    many = images("samples", steps, per_step, "m", size=(32, 32), noise=True)
    run_dir = write_run(save_dir, "m", "many", [*many, table("long", 0, {"i": list(range(EMBED_ROWS + 50))})])
    write_run(str(tmp_path / "plain"), "m", "many", [])
    base = os.path.getsize(write_report(Store(str(tmp_path / "plain")), tmp_path / "plain.html"))
    out = write_report(Store(save_dir), tmp_path / "report.html")
    sizes = [os.path.getsize(e.path) for e in os.scandir(os.path.join(run_dir, "media-files"))]
    assert len(sizes) == 1001
    embedded = EMBED_STEPS * EMBED_IMAGES * max(sizes) * 4 / 3  # base64
    assert os.path.getsize(out) < base + embedded * 1.1, "at most the capped share of the images"
    assert sum(sizes) * 4 / 3 > embedded * 1.5, "the run has far more than the cap"
    payload = _payload(open(out, "rb").read())
    panel = payload["media"][payload["runs"][0]["key"]]["samples"]
    long = payload["media"][payload["runs"][0]["key"]]["long"]["items"][0][0]["table"]
    assert len(long["rows"]) == EMBED_ROWS and long["total"] == EMBED_ROWS + 50
    assert panel["steps"][0] == 0 and panel["steps"][-1] == 490 and len(panel["steps"]) == EMBED_STEPS
    assert len(payload["files"]) == EMBED_STEPS * EMBED_IMAGES

    page, errors = browser_page
    open_page(page, "file://" + out)
    _decoded(page)
    widths = page.evaluate("[...document.querySelectorAll('#media-panels img')].map((i) => i.naturalWidth)")
    assert widths == [32] * EMBED_IMAGES
    assert page.inner_text(".media-left") == f"{EMBED_STEPS} of 50 steps embedded; 488 of 1000 images left out"
    rows = f"{EMBED_ROWS} of {EMBED_ROWS + 50} rows embedded; lightning-tracker serve shows more"
    assert page.inner_text(".media-rows") == rows
    assert "MB of previews in all" in page.inner_text("#media-note")
    assert errors == []


def test_the_whole_report_keeps_to_one_budget_by_thinning_every_panel_evenly(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightning_tracker.report.media as media

    save_dir = str(tmp_path / "runs")
    for name in ("a", "b", "c"):  # three runs of 20 steps × 4 images each
        write_run(save_dir, "m", name, images("samples", list(range(20)), 4, name, size=(16, 16), noise=True))
    full = _payload(open(write_report(Store(save_dir), tmp_path / "full.html"), "rb").read())
    every = sum(len(uri) for uri in full["files"].values())
    monkeypatch.setattr(media, "EMBED_BYTES", every // 3)
    thin = _payload(open(write_report(Store(save_dir), tmp_path / "thin.html"), "rb").read())
    assert sum(len(uri) for uri in thin["files"].values()) <= every // 3
    panels = [thin["media"][run["key"]]["samples"] for run in thin["runs"]]
    assert [len(p["steps"]) for p in panels] == [5, 5, 5] and all(p["steps"][::4] == [0, 19] for p in panels)
    assert all(p["total_steps"] == 20 for p in panels), "the page can say how many were left out"
    shown = {item["thumb"] for p in panels for step in p["items"] for item in step}
    assert shown == set(thin["files"]), "only the previews a panel shows are embedded"


def test_payloads_on_memory_embed_previews_for_a_report_and_name_objects_for_the_dashboard(tmp_path: Any) -> None:
    local, url = str(tmp_path / "runs"), f"memory://media-{uuid.uuid4().hex[:8]}"
    media_store(local)
    copy_store(local, url)
    store = Store(url, cache=ReadCache())
    payload = build_payload(store)
    key = {r["name"]: r["key"] for r in payload["runs"]}
    a, b = key["run-a"], key["run-b"]
    assert sorted(payload["media"]) == sorted([a, b]), "run-c logged no media"
    assert payload["media_limits"] == {
        "steps": EMBED_STEPS,
        "images": EMBED_IMAGES,
        "rows": EMBED_ROWS,
        "bytes": 30_000_000,
    }
    samples = payload["media"][a]["samples"]
    assert samples["steps"] == [0, 10, 20] and samples["total_items"] == 9
    first = samples["items"][0][0]
    assert (first["caption"], first["width"], first["height"]) == ("a s0 #0", 8, 8) and "object" not in first
    assert payload["files"][first["thumb"]].startswith("data:image/")
    text = payload["media"][a][TEXT_KEY]["items"][0][0]
    rows = [[h, t] for h, t in zip(HOSTILE, ["10", "9", "100"], strict=True)]
    assert text["kind"] == "text" and text["table"] == {"columns": ["prompt", "tokens"], "rows": rows, "total": 3}

    live = json.loads(payload_bytes(store))
    assert live["files"] == {} and live["media_limits"] == {"rows": 10_000}
    item = live["media"][a]["samples"]["items"][2][0]
    assert item["object"].endswith((".png", ".webp")) and item["thumb"] == item["object"], "8 px: its own preview"
    assert "table" not in live["media"][a]["scores"]["items"][0][0], "the dashboard loads tables on demand"

    # a new step reaches the next refresh; what did not change is not read again
    project, run_id = a.split("/")
    chunk = next(n for n in store.storage.listdir(f"{a}/media"))
    store.storage.write_bytes(f"{a}/media/{chunk}", b"damaged after it was read")
    run_dir = os.path.join(local, project, run_id)
    add_media(run_dir, images("samples", [30], 1, "new"), writer="more")
    for name in os.listdir(os.path.join(run_dir, "media")):
        if name != chunk:
            with open(os.path.join(run_dir, "media", name), "rb") as f:
                store.storage.write_bytes(f"{a}/media/{name}", f.read())
    again = json.loads(payload_bytes(store))
    assert again["media"][a]["samples"]["steps"] == [0, 10, 20, 30]
    assert not next(r for r in again["runs"] if r["key"] == a)["damage"], "the unchanged chunk came from the cache"
    assert again["media"][b] == live["media"][b]


def test_a_report_of_an_s3_store_shows_its_images(
    tmp_path: Any, s3_server: Any, browser_page: tuple[Any, list[str]]
) -> None:
    local = str(tmp_path / "runs")
    write_run(local, "m", "remote", images("samples", [0, 1], 2, "s3", size=(120, 160)))
    url = f"s3://{s3_server.new_bucket()}/exp"
    copy_store(local, url, s3_server.storage_options)
    out = write_report(Store(url, s3_server.storage_options), tmp_path / "report.html")
    page, errors = browser_page
    open_page(page, "file://" + out)
    _decoded(page)
    shown = page.evaluate(PANEL, "samples")["runs"][0]["images"]
    assert [(i["caption"], i["width"]) for i in shown] == [("s3 s1 #0", 128), ("s3 s1 #1", 128)], "128 px previews"
    assert errors == []


def test_images_logged_in_a_validation_hook_of_a_trainer_show_in_the_report(
    tmp_path: Any, browser_page: tuple[Any, list[str]]
) -> None:
    import torch

    class Model(tiny_model_class()):  # type: ignore[misc]
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            super().validation_step(batch, batch_idx)
            if batch_idx == 0:
                step = self.global_step
                shade = torch.full((2, 3, 12, 16), (step % 7) / 7.0)
                self.logger.log_image("val/pred", shade, step=step, caption=[f"pred {i} @ {step}" for i in range(2)])
                self.logger.log_text("val/text", columns=["step"], data=[[f"<b>{step}</b>"]], step=step)

    save_dir = str(tmp_path / "runs")
    logger = TrackerLogger(save_dir, name="fit", tensorboard=False)
    trainer(logger, max_epochs=2, limit_train_batches=3, num_sanity_val_steps=0).fit(Model())
    out = write_report(Store(save_dir), tmp_path / "report.html")
    page, errors = browser_page
    open_page(page, "file://" + out)
    _decoded(page)
    shown = page.evaluate(PANEL, "val/pred")
    assert shown["step"] == "step 6 (2 of 2)", "one validation per epoch, 3 steps each"
    assert [(i["caption"], i["width"]) for i in shown["runs"][0]["images"]] == [("pred 0 @ 6", 16), ("pred 1 @ 6", 16)]
    _set_step(page, "val/pred", 0)
    assert [i["caption"] for i in page.evaluate(PANEL, "val/pred")["runs"][0]["images"]] == ["pred 0 @ 3", "pred 1 @ 3"]
    page.wait_for_selector(".media-table")
    assert page.evaluate(TABLE, ["val/text", logger.version]) == [["<b>6</b>"]], "text stays text"
    assert errors == []


def test_a_kind_this_version_does_not_know_is_listed_as_such_not_shown_as_a_table(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_dir = str(tmp_path / "runs")
    with monkeypatch.context() as newer:  # a newer version logged a kind this one does not know
        newer.setitem(MEDIA_KINDS, "hologram", MediaKind("parquet", "table"))
        write_run(save_dir, "m", "run-h", [table("scene", 0, {"x": [1.0]}, kind="hologram")])
    assert "hologram" not in MEDIA_KINDS
    store = Store(save_dir)
    run = store.run("run-h")
    for embed in (True, False):
        item = media_part(run, embed=embed)["keys"]["scene"]["items"][0][0]
        assert item == {"index": 0, "kind": "hologram", "renderer": None, "caption": None}, "neither read nor served"
    name = run.media().iloc[0]["object"]
    assert [MediaFiles(store).answer("m", run.id, name, route) for route in ("media", "table")] == [None, None]
