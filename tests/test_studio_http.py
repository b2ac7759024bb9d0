"""The studio's server over HTTP, without a browser: its security rules (token, Host,
Origin, uploads, files) and its jobs (track, inpaint, cancel, queue, downloads)."""

from __future__ import annotations

import base64
import io as bytes_io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from fused_inpaint import io  # noqa: E402
from fused_inpaint.cli import main  # noqa: E402
from fused_inpaint.data import object_removal_clip  # noqa: E402
from fused_inpaint.pipeline import Inpainter  # noqa: E402
from fused_inpaint.studio import Studio, create_app, is_local  # noqa: E402

PORT = 8765
ORIGIN = f"http://127.0.0.1:{PORT}"
TOKEN = "a-token-for-tests"
WAIT_S = 60


@pytest.fixture(scope="session")
def clip():
    """A tiny object-removal clip: 12 frames of 96x128, the object's exact masks."""
    return object_removal_clip(0, 12, 96, 128)


@pytest.fixture(scope="session")
def clip_video(clip, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "object.mp4"
    with io.VideoWriter(path, 10) as writer:
        for frame in clip.frames:
            writer.write(frame)
    return path


class GatedInpainter:
    """An Inpainter whose stream stops after its first frame until ``gate`` is set, so
    that a test can cancel a job half-way (or queue another behind it) for sure."""

    def __init__(self, mode: str):
        self.inpainter = Inpainter(mode=mode)
        self.gate = threading.Event()

    def stream(self, frames, masks):
        for index, frame in enumerate(self.inpainter.stream(frames, masks)):
            yield frame
            if index == 0:
                assert self.gate.wait(WAIT_S)


@pytest.fixture
def studio():
    studio = Studio(max_upload_bytes=200_000)
    yield studio
    studio.close()


def client_of(studio: Studio, cookie: bool = True) -> TestClient:
    """A client of the app on 127.0.0.1:PORT, with the token's cookie unless not
    ``cookie``."""
    app = create_app(studio, TOKEN, "127.0.0.1", PORT)
    client = TestClient(app, base_url=ORIGIN, follow_redirects=False)
    if cookie:
        client.cookies.set(f"fused_inpaint_studio_{PORT}", TOKEN)
    return client


@pytest.fixture
def client(studio):
    with client_of(studio) as client:
        yield client


def upload(client, path: Path, name: str | None = None):
    return client.post(
        "/api/clips", params={"name": name or path.name}, content=Path(path).read_bytes()
    )


def wait(client, job: dict) -> dict:
    deadline = time.monotonic() + WAIT_S
    while job["state"] in ("waiting", "running"):
        assert time.monotonic() < deadline, f"job still {job['state']} after {WAIT_S} s"
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, H, W) bool each -> (T,) intersection over union."""
    return (a & b).sum(axis=(1, 2)) / np.maximum((a | b).sum(axis=(1, 2)), 1)


# --- the token, Host and Origin ------------------------------------------------------------


def test_every_request_needs_the_token(studio):
    with client_of(studio, cookie=False) as client:
        for path in ("/", "/api/state", "/static/studio.js", "/api/jobs/x", "/nothing"):
            response = client.get(path)
            assert response.status_code == 403, path
            assert "token" in response.text
        assert client.get("/api/state", params={"token": "wrong"}).status_code == 403
        client.cookies.set(f"fused_inpaint_studio_{PORT}", "wrong")
        assert client.get("/api/state").status_code == 403


def test_the_first_visit_sets_a_cookie_and_drops_the_token_from_the_address(studio):
    with client_of(studio, cookie=False) as client:
        first = client.get("/", params={"token": TOKEN})
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = client.get("/")  # the cookie alone, from now on
        assert page.status_code == 200 and "fused-inpaint studio" in page.text
        assert client.get("/api/state").json()["modes"] == ["offline", "stream", "online"]


def test_answers_carry_the_security_headers(client):
    headers = client.get("/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "host",
    ["evil.example:8765", "evil.example", "127.0.0.1:8766", "localhost.evil.example:8765", ""],
)
def test_a_foreign_host_is_refused_even_with_the_token(client, host):
    """DNS rebinding: a page of evil.example that resolves to 127.0.0.1 sends its name."""
    response = client.get("/api/state", params={"token": TOKEN}, headers={"host": host})
    assert response.status_code == 403 and "Host" in response.text


def test_the_local_names_are_the_servers_own(client):
    for host in (f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}"):
        assert client.get("/api/state", headers={"host": host}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": f"http://127.0.0.1:{PORT + 1}"},
        {"origin": f"https://127.0.0.1:{PORT}"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
def test_requests_from_another_sites_page_are_refused(client, clip_video, headers):
    response = client.post(
        "/api/clips", params={"name": "x.mp4"}, content=clip_video.read_bytes(), headers=headers
    )
    assert response.status_code == 403
    assert client.get("/api/state").json()["clips"] == []  # nothing was opened


def test_the_servers_own_origin_is_accepted(client, clip_video):
    response = client.post(
        "/api/clips",
        params={"name": "x.mp4"},
        content=clip_video.read_bytes(),
        headers={"origin": ORIGIN, "sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 200, response.text


def test_wildcard_hosts_take_ip_literals_but_no_other_name(studio):
    app = create_app(studio, TOKEN, "0.0.0.0", PORT)
    with TestClient(app, base_url=ORIGIN) as client:
        client.cookies.set(f"fused_inpaint_studio_{PORT}", TOKEN)
        for host, status in ((f"192.168.1.20:{PORT}", 200), (f"evil.example:{PORT}", 403)):
            assert client.get("/api/state", headers={"host": host}).status_code == status


# --- files and uploads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e/%2e%2e/io.py",
        "/api/clips/..%2f..%2fetc/frames/0.jpg",
        "/api/jobs/x/download/..%2f..%2fio.py",
        "/etc/passwd",
    ],
)
def test_no_other_file_can_be_read(client, path):
    response = client.get(path)
    assert response.status_code in (403, 404, 422)
    assert "import" not in response.text and "root:" not in response.text


def test_an_upload_opens_and_its_file_is_not_kept(client, studio, clip, clip_video):
    described = upload(client, clip_video).json()
    assert (described["frames"], described["width"], described["height"]) == (12, 128, 96)
    assert files_in(studio.folder) == []  # the frames are in memory
    frame = client.get(f"/api/clips/{described['id']}/frames/3.jpg")
    assert frame.headers["content-type"] == "image/jpeg"
    decoded = np.asarray(Image.open(bytes_io.BytesIO(frame.content)), dtype=np.float64)
    assert np.abs(decoded - clip.frames[3]).mean() < 8  # the same picture, through two codecs
    assert client.get(f"/api/clips/{described['id']}/frames/12.jpg").status_code == 404


@pytest.mark.parametrize(
    "content, status, words",
    [
        (b"just some text, not a video\n" * 10, 400, "not a video"),
        (b"", 400, "empty"),
        (b"x" * 200_001, 413, "upload limit"),
    ],
    ids=["text", "empty", "too-large"],
)
def test_a_bad_upload_gets_a_message_and_leaves_nothing(client, studio, content, status, words):
    response = client.post("/api/clips", params={"name": "bad.mp4"}, content=content)
    assert response.status_code == status
    assert words in response.json()["error"]
    assert str(studio.folder) not in response.text
    assert files_in(studio.folder) == []
    assert client.get("/api/state").status_code == 200  # the server stays up


def test_an_upload_without_a_stated_length_is_cut_at_the_limit(client, studio):
    def chunks():
        for _ in range(30):
            yield b"y" * 10_000

    response = client.post("/api/clips", params={"name": "big.mp4"}, content=chunks())
    assert response.status_code == 413
    assert files_in(studio.folder) == []


def test_a_truncated_video_gets_a_message(client, studio, clip_video):
    data = clip_video.read_bytes()
    response = client.post("/api/clips", params={"name": "cut.mp4"}, content=data[: len(data) // 3])
    if response.status_code == 200:  # the frames before the cut, and a warning
        assert response.json()["frames"] < 12 and "truncated" in response.json()["warning"]
    else:
        assert response.status_code == 400 and "cut.mp4" in response.json()["error"]
    assert files_in(studio.folder) == []


def test_a_video_of_zero_frames_gets_a_message(client, studio, tmp_path):
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()  # the header of a video stream, then no frame
    response = upload(client, path)
    assert response.status_code == 400 and "empty.mkv" in response.json()["error"]
    assert files_in(studio.folder) == []


# --- tracking, inpainting, cancel, queue -----------------------------------------------------


def track(client, clip_id: str, keyframes: list[dict]) -> dict:
    response = client.post(f"/api/clips/{clip_id}/track", json={"keyframes": keyframes})
    assert response.status_code == 200, response.text
    job = wait(client, response.json())
    assert job["state"] == "done", job["message"]
    return job


def test_a_box_of_zero_size_or_outside_gets_a_message(client, clip_video):
    clip_id = upload(client, clip_video).json()["id"]
    for box, words in (([10, 10, 0, 5], "empty"), ([500, 10, 5, 5], "outside")):
        response = client.post(
            f"/api/clips/{clip_id}/track", json={"keyframes": [{"frame": 0, "boxes": [box]}]}
        )
        assert response.status_code == 400 and words in response.json()["error"]
    response = client.post(f"/api/clips/{clip_id}/inpaint", json={"dilate": 0, "mode": "online"})
    assert response.status_code == 400 and "track" in response.json()["error"]


def test_a_painted_keyframe_corrects_the_tracked_masks(client, clip, clip_video):
    """A box on frame 0, then on frame 8 a painting elsewhere (the object erased there):
    frames 0-4 follow the box, frames 5-11, nearer to frame 8, the painting."""
    clip_id = upload(client, clip_video).json()["id"]
    box = list(clip.box)
    first = track(client, clip_id, [{"frame": 0, "boxes": [box]}])
    wrong = np.zeros((96, 128, 4), np.uint8)
    wrong[5:25, 5:30] = 255
    png = bytes_io.BytesIO()
    Image.fromarray(wrong, "RGBA").save(png, format="PNG")
    painted = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    keyframes = [{"frame": 0, "boxes": [box]}, {"frame": 8, "mask": painted}]
    second = track(client, clip_id, keyframes)
    assert second["mask_version"] == first["mask_version"] + 1
    assert first["unmasked"] == second["unmasked"] == []
    masks = []
    for index in range(12):
        url = f"/api/clips/{clip_id}/masks/{index}.png"
        overlay = client.get(url, params={"version": second["mask_version"]})
        masks.append(np.asarray(Image.open(bytes_io.BytesIO(overlay.content)))[..., 3] > 0)
    masks = np.stack(masks)
    assert iou(masks[:4], clip.mask[:4]).min() > 0.85
    assert masks[8, :40, :40].any() and not masks[5:, :, 50:].any()
    stale = client.get(f"/api/clips/{clip_id}/masks/0.png", params={"version": 1})
    assert stale.status_code == 404


def test_the_frames_left_without_a_mask_are_named(client, clip, clip_video):
    """A keyframe erased to nothing on frame 8: frames 5-11, nearer to it than to the box
    on frame 0, have no mask, and the answer says which, so that the page can ask."""
    clip_id = upload(client, clip_video).json()["id"]
    png = bytes_io.BytesIO()
    Image.fromarray(np.zeros((96, 128, 4), np.uint8), "RGBA").save(png, format="PNG")
    erased = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    keyframes = [{"frame": 0, "boxes": [list(clip.box)]}, {"frame": 8, "mask": erased}]
    job = track(client, clip_id, keyframes)
    assert job["unmasked"] == [[5, 11]]
    masks = overlays(client, clip_id, job["mask_version"], 12)
    assert masks[:5].any(axis=(1, 2)).all() and not masks[5:].any()


def overlays(client, clip_id: str, version: int, count: int) -> np.ndarray:
    """The tracked masks the page shows: (T, H, W) bool."""
    masks = []
    for index in range(count):
        url = f"/api/clips/{clip_id}/masks/{index}.png"
        overlay = client.get(url, params={"version": version})
        assert overlay.status_code == 200
        masks.append(np.asarray(Image.open(bytes_io.BytesIO(overlay.content)))[..., 3] > 0)
    return np.stack(masks)


def download(client, job: dict, what: str, folder: Path) -> Path:
    response = client.get(f"/api/jobs/{job['id']}/download/{what}")
    assert response.status_code == 200
    name = response.headers["content-disposition"].split("filename=")[1].strip('"')
    (folder / name).write_bytes(response.content)
    return folder / name


def test_inpaint_writes_the_result_the_png_frames_and_the_mask(client, clip, clip_video, tmp_path):
    clip_id = upload(client, clip_video).json()["id"]
    version = track(client, clip_id, [{"frame": 0, "boxes": [list(clip.box)]}])["mask_version"]
    response = client.post(f"/api/clips/{clip_id}/inpaint", json={"dilate": 2, "mode": "online"})
    job = wait(client, response.json())
    assert job["state"] == "done" and job["done"] == job["total"] == 12
    assert job["frames_per_s"] > 0 and job["first_frame_s"] is not None
    holes = np.stack([io.dilate_hole(m, 2) for m in overlays(client, clip_id, version, 12)])
    inputs = np.stack(list(io.open_frames(clip_video)))  # as the server decoded them

    with zipfile.ZipFile(download(client, job, "frames", tmp_path)) as archive:
        names = archive.namelist()
        result = np.stack([np.asarray(Image.open(archive.open(name))) for name in names])
    assert names[0] == "00000.png" and result.shape == (12, 96, 128, 3)
    assert np.array_equal(result[~holes], inputs[~holes])  # lossless outside the hole
    assert not np.array_equal(result[holes], inputs[holes])
    video = np.stack(list(io.open_frames(download(client, job, "video", tmp_path))))
    assert video.shape == (12, 96, 128, 3)
    masks = np.stack(list(io.Masks(download(client, job, "mask", tmp_path)).per_frame()))
    assert masks.shape == (12, 96, 128) and iou(masks, holes).min() > 0.95
    preview = client.get(f"/api/jobs/{job['id']}/frames/11.jpg")
    assert preview.headers["content-type"] == "image/jpeg"


def start_inpainting(client, clip, clip_video, mode="online") -> dict:
    clip_id = upload(client, clip_video).json()["id"]
    track(client, clip_id, [{"frame": 0, "boxes": [list(clip.box)]}])
    response = client.post(f"/api/clips/{clip_id}/inpaint", json={"dilate": 0, "mode": mode})
    assert response.status_code == 200, response.text
    return response.json()


def until(client, job: dict, condition) -> dict:
    deadline = time.monotonic() + WAIT_S
    while not condition(job):
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


def test_a_job_cancelled_half_way_says_so_and_leaves_nothing(clip, clip_video):
    studio = Studio(make_inpainter=GatedInpainter)
    with client_of(studio) as client:
        job = start_inpainting(client, clip, clip_video)
        until(client, job, lambda j: j["done"] >= 1)
        cancelled = client.post(f"/api/jobs/{job['id']}/cancel").json()
        studio.make_inpainter("online").gate.set()
        job = wait(client, cancelled)
        assert job["state"] == "cancelled" and "cancelled after 1 frames" in job["message"]
        assert files_in(studio.folder) == [] and not list(studio.folder.glob("job-*"))
        assert client.get(f"/api/jobs/{job['id']}/download/video").status_code == 409
        again = wait(client, start_inpainting(client, clip, clip_video))  # still serving
        assert again["state"] == "done"
    assert not studio.folder.exists()


def test_one_job_at_a_time_the_next_waits_and_can_be_cancelled(clip, clip_video):
    studio = Studio(make_inpainter=GatedInpainter)
    with client_of(studio) as client:
        first = start_inpainting(client, clip, clip_video)
        second = start_inpainting(client, clip, clip_video)
        until(client, first, lambda j: j["state"] == "running")
        second = client.get(f"/api/jobs/{second['id']}").json()
        assert (second["state"], second["ahead"]) == ("waiting", 1)
        cancelled = client.post(f"/api/jobs/{second['id']}/cancel").json()
        assert cancelled["state"] == "cancelled"
        studio.make_inpainter("online").gate.set()
        assert wait(client, first)["state"] == "done"


def test_stopping_the_server_removes_its_folder(clip, clip_video):
    studio = Studio(make_inpainter=GatedInpainter)
    with client_of(studio) as client:
        job = start_inpainting(client, clip, clip_video)
        until(client, job, lambda j: j["done"] >= 1)
        assert list(studio.folder.glob("job-*"))
        studio.make_inpainter("online").gate.set()
    assert not studio.folder.exists()


# --- the command ---------------------------------------------------------------------------


def test_the_command_prints_its_address_serves_and_cleans_up_on_ctrl_c(clip_video, tmp_path):
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "fused_inpaint.cli", "studio", str(clip_video), "--port", "0"]
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        while not any("token=" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"exited: {process.stderr.read()}"
            lines.append(line)
        url = next(line for line in lines if "token=" in line).strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        assert len(list(tmp_path.glob("fused-inpaint-studio-*"))) == 1
        state_url = url.replace("/?token=", "/api/state?token=")
        with urllib.request.urlopen(state_url, timeout=WAIT_S) as answer:
            assert json.load(answer)["clips"][0]["name"] == "object.mp4"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=WAIT_S)
    finally:
        process.kill()
        process.wait()
    assert process.returncode in (0, 130)
    assert list(tmp_path.glob("fused-inpaint-studio-*")) == []


def test_the_command_refuses_a_missing_input_in_one_line(tmp_path, capsys):
    assert main(["studio", str(tmp_path / "absent.mp4"), "--port", "0"]) == 1
    assert "input not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "host, local",
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("example.com", False)],
)  # fmt: skip
def test_only_loopback_hosts_are_local(host, local):
    """The command warns when it listens on a host that is not local."""
    assert is_local(host) == local
