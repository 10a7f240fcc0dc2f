"""In a real browser: ComfyUI's own frontend, the shipped workflows and the Point Picker editor.

Needs ``COMFYUI_PATH`` (a ComfyUI checkout with its requirements, including
``comfyui-frontend-package``), Chromium (Debian's ``chromium``, or ``CHROMIUM_PATH``) and
Playwright's Python package (``pip install -e ".[browser]"``; its bundled browsers are not
used). Not part of CI. The checkpoint is the random-weight SD1.5 of the ComfyUI tests, under
the name the shipped workflows use.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from comfyui_helpers import (
    CHECKPOINT_NAME,
    COMFYUI_PATH,
    ROOT,
    SKIP_REASON,
    comfyui_server,
    get_json,
    install_pack,
    make_sd15_checkpoint,
    wait_for_prompt,
)
from PIL import Image

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or ""
if not COMFYUI_PATH:
    pytest.skip(SKIP_REASON, allow_module_level=True)
if not CHROMIUM:
    pytest.skip(
        "no Chromium: install Debian's `chromium` or set CHROMIUM_PATH", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason='Playwright is not installed: pip install -e ".[browser]"'
)

WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
PICKER = 3  # the Point Picker's node id in the basic workflow
IMAGE_HW = (72, 100)  # cropped by the picker to 72×96: 2 columns off the left
CROP_LEFT = 2


def _scene(height: int, width: int) -> Image.Image:
    """A gradient with a red disc: something to see in the screenshots."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, np.full_like(x, 160.0)], axis=-1)
    pixels[(x - width * 0.3) ** 2 + (y - height * 0.45) ** 2 < (height * 0.18) ** 2] = (230, 40, 40)
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    checkpoint = Path(COMFYUI_PATH) / "models" / "checkpoints" / CHECKPOINT_NAME
    make_sd15_checkpoint(checkpoint)
    base = tmp_path_factory.mktemp("comfy_browser")
    install_pack(base / "custom_nodes")
    (base / "models" / "checkpoints").mkdir(parents=True)
    workflow_names = json.loads((WORKFLOWS[0]).read_text())
    ckpt = next(n for n in workflow_names["nodes"] if n["type"] == "CheckpointLoaderSimple")
    (base / "models" / "checkpoints" / ckpt["widgets_values"][0]).symlink_to(checkpoint)
    (base / "input").mkdir()
    _scene(*IMAGE_HW).save(base / "input" / "example.png")
    with comfyui_server(base) as url:
        yield url, base


@pytest.fixture(scope="module")
def page(server):
    url, _ = server
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        page.goto(url)
        page.wait_for_function("window.app && window.app.graph", timeout=120_000)
        page.wait_for_timeout(2000)
        page.keyboard.press("Escape")  # the first-run template browser
        errors.clear()  # the frontend's own start-up (a settings TypeError in 1.27.10)
        page.errors = errors
        yield page
        browser.close()


def _load(page, workflow: dict) -> None:
    """Open a workflow as a user's file would be; fail on the frontend's schema warning."""
    count = "() => document.body.innerText.split('Invalid workflow').length"
    before = page.evaluate(count)
    page.evaluate("async (data) => { await window.app.loadGraphData(data); }", workflow)
    page.wait_for_timeout(500)
    assert page.evaluate(count) == before, "the frontend says the workflow is invalid"


def _editor_ready(page, node_id: int, size: tuple[int, int]) -> None:
    height, width = size
    page.wait_for_function(
        f"""() => {{
            const editor = app.graph.getNodeById({node_id})?.dragpdEditor;
            return editor?.image?.complete && editor.image.naturalWidth === {width}
                && editor.image.naturalHeight === {height};
        }}""",
        timeout=30_000,
    )


def _show_node(page, node_id: int, zoom: float, size: tuple[int, int] | None = None) -> dict:
    """Put the node at the top left at ``zoom`` (resized to ``size``); the editor's rect."""
    page.evaluate(
        f"""() => {{
            const node = app.graph.getNodeById({node_id});
            {f"node.setSize([{size[0]}, {size[1]}]);" if size else ""}
            const ds = app.canvas.ds;
            ds.scale = {zoom};
            ds.offset[0] = -node.pos[0] + 80 / {zoom};
            ds.offset[1] = -node.pos[1] + 120 / {zoom};
            app.canvas.setDirty(true, true);
        }}"""
    )
    page.wait_for_timeout(600)
    return page.evaluate(
        f"() => app.graph.getNodeById({node_id}).dragpdEditor.canvas.getBoundingClientRect()"
        ".toJSON()"
    )


def _client_point(rect: dict, size: tuple[int, int], pixel: tuple[int, int]) -> tuple:
    """Where pixel (x, y) of a ``size`` image is drawn when fitted, centred, in ``rect``."""
    height, width = size
    scale = min(rect["width"] / width, rect["height"] / height)
    left = rect["left"] + (rect["width"] - width * scale) / 2
    top = rect["top"] + (rect["height"] - height * scale) / 2
    return left + (pixel[0] + 0.5) * scale, top + (pixel[1] + 0.5) * scale


def _prompt_ids(url: str) -> set[str]:
    """Every prompt the server knows: finished, running or waiting."""
    queue = get_json(f"{url}/queue")
    waiting = {item[1] for item in queue["queue_running"] + queue["queue_pending"]}
    return waiting | set(get_json(f"{url}/history"))


def _points_sent(url: str, node_id: int, before: set[str]) -> tuple[dict, dict]:
    """(what the picker sent on, the prompt's status) of the prompt queued since ``before``."""
    deadline = time.time() + 30
    while not (new := _prompt_ids(url) - before):
        if time.time() > deadline:
            raise TimeoutError("the Run button queued nothing")
        time.sleep(0.5)
    (prompt_id,) = new
    entry = wait_for_prompt(url, prompt_id)
    return entry["outputs"][str(node_id)]["dragpd_points"][0], entry["status"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_shipped_workflow_loads_with_every_node_and_widget_value(page, path):
    workflow = json.loads(path.read_text())
    _load(page, workflow)
    loaded = page.evaluate(
        """() => app.graph.serialize().nodes.map((n) => ({
            id: n.id, type: n.type, known: n.type in LiteGraph.registered_node_types,
            widgets_values: n.widgets_values ?? []}))"""
    )
    assert {n["id"]: n["type"] for n in loaded} == {n["id"]: n["type"] for n in workflow["nodes"]}
    assert all(n["known"] for n in loaded), [n["type"] for n in loaded if not n["known"]]
    by_id = {n["id"]: n for n in loaded}
    for node in workflow["nodes"]:
        values = by_id[node["id"]]["widgets_values"][: len(node["widgets_values"])]
        if node["type"] == "DragPDPointPicker":  # the editor rewrites it for Load Image's size
            assert json.loads(values.pop(0))["pairs"] == []
            values.insert(0, node["widgets_values"][0])
        assert values == node["widgets_values"], node["type"]
    links = page.evaluate("() => Object.keys(app.graph.links).length")
    assert links == len(workflow["links"])
    assert not page.errors, page.errors


def test_clicked_pairs_reach_the_backend_at_any_zoom(page, server, tmp_path):
    url, _ = server
    workflow = json.loads((ROOT / "workflows" / "dragpd_basic_drag.json").read_text())
    _load(page, workflow)
    _editor_ready(page, PICKER, IMAGE_HW)  # Load Image's preview, before any run

    pairs = [((20, 30), (40, 30)), ((70, 50), (80, 40))]
    for (zoom, size), (handle, target) in zip(((1.0, None), (1.7, (420, 330))), pairs, strict=True):
        rect = _show_node(page, PICKER, zoom, size)
        for pixel in (handle, target):
            page.mouse.click(*_client_point(rect, IMAGE_HW, pixel))
            page.wait_for_timeout(200)
    page.screenshot(path=str(tmp_path / "point_picker.png"))

    stored = page.evaluate(
        f"() => app.graph.getNodeById({PICKER}).widgets.find((w) => w.name === 'points_json').value"
    )
    document = json.loads(stored)
    assert document["image_size"] == list(IMAGE_HW)
    clicked = [{"handle": list(h), "target": list(t)} for h, t in pairs]
    assert document["pairs"] == clicked

    # Save and load the workflow: the pairs come back, the old editor is gone from the page.
    page.evaluate(f"() => {{ window.oldEditor = app.graph.getNodeById({PICKER}).dragpdEditor; }}")
    saved = page.evaluate("async () => JSON.stringify((await app.graphToPrompt()).workflow)")
    _load(page, json.loads(saved))  # as a saved file: JSON, so no `undefined` fields
    restored = page.evaluate(
        f"""() => ({{pairs: app.graph.getNodeById({PICKER}).dragpdEditor.state.pairs,
                    oldAttached: document.contains(window.oldEditor.root),
                    oldObserved: window.oldEditor.canvas.isConnected}})"""
    )
    assert restored == {"pairs": clicked, "oldAttached": False, "oldObserved": False}

    # Tiny steps (random weights: only the plumbing matters here), then the Run button.
    page.evaluate(
        """() => {
            const set = (id, name, value) => {
                app.graph.getNodeById(id).widgets.find((w) => w.name === name).value = value;
            };
            set(6, "steps", 2); set(6, "rank", 4); set(7, "steps", 3); set(8, "iterations", 2);
        }"""
    )
    before = _prompt_ids(url)
    page.get_by_role("button", name="Run", exact=True).first.click()
    sent, status = _points_sent(url, PICKER, before)

    assert status["status_str"] == "success", status
    assert sent["image_size"] == [IMAGE_HW[0], IMAGE_HW[1] // 8 * 8]
    for got, want in zip(sent["pairs"], clicked, strict=True):
        for which in ("handle", "target"):
            expected = np.array(want[which]) - (CROP_LEFT, 0)
            assert np.abs(np.array(got[which]) - expected).max() <= 1.0, (which, got, want)
    assert not page.errors, page.errors


def test_an_image_uploaded_in_the_node_is_shown_and_used(page, server, tmp_path):
    url, base = server
    upload = tmp_path / "photo.png"
    _scene(41, 57).save(upload)
    page.evaluate(
        """() => {
            app.graph.clear();
            const node = LiteGraph.createNode("DragPDPointPicker");
            node.pos = [100, 100];
            app.graph.add(node);
            window.uploadNode = node.id;
        }"""
    )
    node_id = page.evaluate("() => window.uploadNode")
    page.evaluate(f"() => app.graph.getNodeById({node_id}).dragpdEditor.file.id = 'dragpd-file'")
    page.set_input_files("#dragpd-file", str(upload))
    _editor_ready(page, node_id, (41, 57))
    uploaded = page.evaluate(
        f"() => app.graph.getNodeById({node_id}).widgets.find((w) => w.name === 'upload').value"
    )
    assert (base / "input" / uploaded).read_bytes() == upload.read_bytes()

    rect = _show_node(page, node_id, 1.3)
    for pixel in ((5, 6), (30, 20)):
        page.mouse.click(*_client_point(rect, (41, 57), pixel))
        page.wait_for_timeout(200)
    before = _prompt_ids(url)
    page.get_by_role("button", name="Run", exact=True).first.click()
    sent, status = _points_sent(url, node_id, before)

    assert status["status_str"] == "success", status
    assert sent == {  # cropped to 40×56 from the top left
        "image_size": [40, 56],
        "pairs": [{"handle": [5.0, 6.0], "target": [30.0, 20.0]}],
        "masked": False,
    }
    assert not page.errors, page.errors


def test_points_move_delete_undo_and_the_brush_paints_the_mask(page, tmp_path):
    from dragpd import DragPoints

    workflow = json.loads((ROOT / "workflows" / "dragpd_basic_drag.json").read_text())
    _load(page, workflow)
    _editor_ready(page, PICKER, IMAGE_HW)
    rect = _show_node(page, PICKER, 1.5)
    at = lambda pixel: _client_point(rect, IMAGE_HW, pixel)  # noqa: E731

    def document() -> dict:
        return json.loads(
            page.evaluate(
                f"() => app.graph.getNodeById({PICKER}).widgets"
                ".find((w) => w.name === 'points_json').value"
            )
        )

    for pixel in ((10, 10), (30, 12), (50, 40), (60, 60)):
        page.mouse.click(*at(pixel))
    page.mouse.move(*at((30, 12)))  # drag the first target
    page.mouse.down()
    page.mouse.move(*at((34, 20)), steps=5)
    page.mouse.up()
    assert [p["target"] for p in document()["pairs"]] == [[34, 20], [60, 60]]
    page.mouse.click(*at((50, 40)), button="right")  # delete the second pair
    assert len(document()["pairs"]) == 1
    page.get_by_role("button", name="Undo", exact=True).click()
    assert [p["handle"] for p in document()["pairs"]] == [[10, 10], [50, 40]]

    page.get_by_role("button", name="Brush", exact=True).click()
    page.mouse.move(*at((20, 50)))
    page.mouse.down()
    page.mouse.move(*at((40, 50)), steps=8)
    page.mouse.up()
    page.screenshot(path=str(tmp_path / "point_picker_edits.png"))
    strokes = document()["mask"]["strokes"]
    assert len(strokes) == 1 and not strokes[0]["erase"]
    mask = DragPoints.from_json(json.dumps(document())).mask
    ys, xs = mask.nonzero(as_tuple=True)
    radius = strokes[0]["radius"]
    assert abs(xs.min().item() - (20 - radius)) <= 1 and abs(xs.max().item() - (40 + radius)) <= 1
    assert abs(ys.float().mean().item() - 50) <= 0.5
    assert len(document()["pairs"]) == 2  # painting placed no points
    page.keyboard.press("Control+z")  # the canvas has focus: undoes the stroke, not the graph
    assert document()["mask"]["strokes"] == [] and len(document()["pairs"]) == 2
    assert page.evaluate("() => app.graph.nodes.length") == len(workflow["nodes"])
    assert not page.errors, page.errors
