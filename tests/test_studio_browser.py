"""The studio page in headless Chromium (the system's, driven by Playwright): remove an
object from a box drawn with the mouse, and the bad cases, each through the page.

Run alone with ``pytest -m browser``. Screenshots go to each test's tmp folder.
"""

from __future__ import annotations

import io as bytes_io
import shutil
import zipfile
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")
import test_studio_http  # noqa: E402
from test_studio_http import GatedInpainter, iou  # noqa: E402

from fused_inpaint import io  # noqa: E402
from fused_inpaint.studio import Studio, StudioServer  # noqa: E402

pytestmark = pytest.mark.browser
clip, clip_video = test_studio_http.clip, test_studio_http.clip_video  # the same fixtures
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's)")
    with playwright.sync_playwright() as driver:
        # evil.example resolves to this machine, as a rebinding attacker's name would.
        rules = "--host-resolver-rules=MAP evil.example 127.0.0.1"
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[rules])
        yield browser
        browser.close()


@pytest.fixture
def serve():
    """serve(make_inpainter=None) -> a running StudioServer on 127.0.0.1, a free port;
    stopped after the test, its folder then gone."""
    servers = []

    def start(make_inpainter=None) -> StudioServer:
        server = StudioServer(Studio(make_inpainter), "127.0.0.1", 0)
        servers.append(server)
        server.start(timeout=10)
        return server

    yield start
    for server in servers:
        server.stop(timeout=30)
        assert not server.studio.folder.exists()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def expect(locator):
    return playwright.expect(locator)


def open_page(page, server: StudioServer, video: Path) -> None:
    page.goto(server.urls[0])
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.set_input_files("#open-file", str(video))
    expect(page.locator("#clip-name")).to_contain_text(video.name)


def drag_box(page, box: tuple[int, int, int, int], size: tuple[int, int], margin: int = 3):
    """Drags the mouse over the view from one corner of ``box`` (x, y, w, h) in the clip's
    pixels, grown by ``margin``, to the other; ``size``: the clip's (H, W)."""
    view = page.locator("#view").bounding_box()
    scale_x, scale_y = view["width"] / size[1], view["height"] / size[0]
    x, y, w, h = box
    page.mouse.move(view["x"] + (x - margin) * scale_x, view["y"] + (y - margin) * scale_y)
    page.mouse.down()
    corner = (view["x"] + (x + w + margin) * scale_x, view["y"] + (y + h + margin) * scale_y)
    page.mouse.move(*corner, steps=8)
    page.mouse.up()


def get(page, path: str):
    """GET ``path`` of the page's server with the page's cookie."""
    return page.request.get(urljoin(page.url, path))


def state(page) -> dict:
    return get(page, "/api/state").json()


def tracked_masks(page, clip_id: str, version: int, count: int) -> np.ndarray:
    masks = []
    for index in range(count):
        url = f"/api/clips/{clip_id}/masks/{index}.png?version={version}"
        png = get(page, url).body()
        masks.append(np.asarray(Image.open(bytes_io.BytesIO(png)))[..., 3] > 0)
    return np.stack(masks)


def test_remove_an_object_from_a_box_drawn_with_the_mouse(serve, page, clip, clip_video, tmp_path):
    server = serve()
    open_page(page, server, clip_video)
    drag_box(page, clip.box, clip.mask.shape[1:])
    page.click("#track")
    expect(page.locator("#track-status")).to_contain_text("tracked")
    expect(page.locator("#track-status")).not_to_contain_text("no mask")
    page.locator("#scrub").fill("6")
    page.screenshot(path=tmp_path / "tracked.png")

    opened = state(page)["clips"][0]
    masks = tracked_masks(page, opened["id"], opened["mask_version"], len(clip.frames))
    assert iou(masks, clip.mask).mean() >= 0.85

    page.fill("#dilate", "2")
    page.select_option("#mode", "online")
    page.click("#inpaint")
    expect(page.locator("#progress-text")).to_contain_text("done: 12 frames")
    expect(page.locator("#downloads")).to_be_visible()
    assert page.locator("#progress").get_attribute("value") == "12"
    page.screenshot(path=tmp_path / "done.png", full_page=True)

    downloads = {}
    for what in ("frames", "video", "mask"):
        with page.expect_download() as download:
            page.click(f"#download-{what}")
        downloads[what] = tmp_path / download.value.suggested_filename
        download.value.save_as(downloads[what])
    with zipfile.ZipFile(downloads["frames"]) as archive:
        result = np.stack([np.asarray(Image.open(archive.open(n))) for n in archive.namelist()])
    inputs = np.stack(list(io.open_frames(clip_video)))  # as the server decoded them
    holes = np.stack([io.dilate_hole(mask, 2) for mask in masks])
    assert result.shape == inputs.shape == (12, 96, 128, 3)
    assert np.array_equal(result[~holes], inputs[~holes])
    video = np.stack(list(io.open_frames(downloads["video"])))
    assert video.shape == (12, 96, 128, 3)
    assert np.stack(list(io.Masks(downloads["mask"]).per_frame())).shape == (12, 96, 128)


def brush_over(page, box: tuple[int, int, int, int], size: tuple[int, int]) -> None:
    """Drags the brush in rows across ``box`` (x, y, w, h), grown by 4 pixels, in the
    clip's pixels; ``size``: the clip's (H, W)."""
    view = page.locator("#view").bounding_box()
    scale_x, scale_y = view["width"] / size[1], view["height"] / size[0]
    x, y, w, h = box
    rows = np.linspace(y - 4, y + h + 4, 8)
    page.mouse.move(view["x"] + (x - 4) * scale_x, view["y"] + rows[0] * scale_y)
    page.mouse.down()
    for row, (start, end) in zip(rows, [(x - 4, x + w + 4), (x + w + 4, x - 4)] * 4, strict=True):
        page.mouse.move(view["x"] + start * scale_x, view["y"] + row * scale_y, steps=2)
        page.mouse.move(view["x"] + end * scale_x, view["y"] + row * scale_y, steps=6)
    page.mouse.up()


def test_a_tracked_frame_corrected_with_the_brush(serve, page, clip, clip_video, tmp_path):
    """Erasing the object on frame 9 empties the frames nearer to it than to frame 0;
    painting it back there brings them back."""
    server = serve()
    size = clip.mask.shape[1:]
    open_page(page, server, clip_video)
    drag_box(page, clip.box, size)
    page.click("#track")
    expect(page.locator("#track-status")).to_contain_text("tracked")
    page.locator("#scrub").fill("9")
    expect(page.locator("#frame-label")).to_contain_text("10 / 12")
    ys, xs = np.nonzero(clip.mask[9])
    box_9 = (xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)
    page.check('input[value="erase"]')
    page.locator("#brush").fill("60")
    brush_over(page, box_9, size)
    page.click("#track")
    expect(page.locator("#track-status")).to_contain_text("tracked")
    expect(page.locator("#track-status")).to_contain_text("no mask on frames 6–12")
    page.screenshot(path=tmp_path / "erased.png")
    opened = state(page)["clips"][0]
    masks = tracked_masks(page, opened["id"], opened["mask_version"], 12)
    assert iou(masks[:5], clip.mask[:5]).min() > 0.85 and not masks[5:].any()

    page.check('input[value="paint"]')
    page.locator("#brush").fill("4")
    x, y, w, h = box_9
    brush_over(page, (x + w // 4, y + h // 4, w // 2, h // 2), size)
    page.click("#track")
    expect(page.locator("#track-status")).to_contain_text("tracked")
    expect(page.locator("#track-status")).not_to_contain_text("no mask")
    page.screenshot(path=tmp_path / "painted.png")
    opened = state(page)["clips"][0]
    masks = tracked_masks(page, opened["id"], opened["mask_version"], 12)
    on_object = (masks[5:] & clip.mask[5:]).sum(axis=(1, 2)) / masks[5:].sum(axis=(1, 2))
    assert masks[5:].any(axis=(1, 2)).all() and on_object.min() > 0.8
    assert iou(masks[:5], clip.mask[:5]).min() > 0.85


def test_without_the_token_the_page_says_so(serve, page):
    server = serve()
    page.goto(server.urls[0].split("?")[0])
    expect(page.locator("body")).to_contain_text("missing or wrong token")


def test_a_rebinding_name_is_refused_even_with_the_token(serve, page):
    server = serve()
    page.goto(server.urls[0].replace("127.0.0.1", "evil.example"))
    expect(page.locator("body")).to_contain_text("Host refused")


def test_a_request_with_another_origin_is_refused(serve, page, clip_video):
    server = serve()
    page.goto(server.urls[0])
    headers = {"origin": "http://evil.example", "content-type": "application/octet-stream"}
    url = urljoin(page.url, "/api/clips?name=x.mp4")
    answer = page.request.post(url, data=clip_video.read_bytes(), headers=headers)
    assert answer.status == 403
    assert state(page)["clips"] == []


def test_a_text_file_upload_gets_a_message(serve, page, tmp_path, clip_video):
    server = serve()
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    open_page(page, server, clip_video)
    page.set_input_files("#open-file", str(text))
    expect(page.locator("#message")).to_contain_text("notes.mp4 is not a video")
    page.screenshot(path=tmp_path / "bad-upload.png")
    assert list(server.studio.folder.iterdir()) == []
    assert get(page, "/api/state").ok  # the server stays up


def test_a_box_of_zero_size_gets_a_message(serve, page, clip_video):
    server = serve()
    open_page(page, server, clip_video)
    view = page.locator("#view").bounding_box()
    page.mouse.click(view["x"] + 20, view["y"] + 20)  # a click, no drag
    page.click("#track")
    expect(page.locator("#message")).to_contain_text("empty")


def test_cancel_stops_the_job_and_leaves_nothing(serve, page, clip, clip_video, tmp_path):
    server = serve(GatedInpainter)
    open_page(page, server, clip_video)
    drag_box(page, clip.box, clip.mask.shape[1:])
    page.click("#track")
    expect(page.locator("#track-status")).to_contain_text("tracked")
    page.click("#inpaint")
    expect(page.locator("#progress-text")).to_contain_text("1 / 12 frames")
    page.screenshot(path=tmp_path / "running.png", full_page=True)
    page.click("#cancel")
    server.studio.make_inpainter("offline").gate.set()
    expect(page.locator("#message")).to_contain_text("cancelled after 1 frames")
    assert not list(server.studio.folder.glob("job-*"))
