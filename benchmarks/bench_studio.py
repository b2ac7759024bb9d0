"""Studio benchmark: how long a user waits, from the upload to the first inpainted frame on
the page, for a 10-second 480p clip.

Any machine:  python benchmarks/bench_studio.py [--quick] [--seeds N] [--budget-s S]
      [--out DIR] [--note TEXT]
      serves the page with the real command (``fused-inpaint studio --port 0``, in a process
      of its own) and goes through it over HTTP as the page does: uploads a synthetic
      object-removal clip (``data.object_removal_clip``, 250 frames of 854x480 at 25
      frames/s, as an MP4), tracks the object from its box on frame 0, then inpaints it in
      offline and in stream mode with the page's default dilation; the seconds of each
      step, wall clock from the request to the answer (the first frame: until the job
      reports it done, which is when the page can show it). Writes DIR/<device>/studio.md.
      Needs the studio extra (``pip install -e ".[studio]"``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import common

from fused_inpaint import io
from fused_inpaint.data import object_removal_clip
from fused_inpaint.tracking import default_dilate

NAME = "studio"
SIZE, FRAMES, FPS = (480, 854), 250, 25  # (H, W): a 10-second 480p clip
QUICK_SIZE, QUICK_FRAMES = (240, 432), 50
MODES = ("offline", "stream")
POLL_S = 0.05
TIMEOUT_S = 900


class Studio:
    """``fused-inpaint studio --port 0`` in a process of its own, and requests to it."""

    def __init__(self):
        command = [sys.executable, "-m", "fused_inpaint.cli", "studio", "--port", "0"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for line in self.process.stdout:
            if "/?token=" in line:
                self.base, self.token = line.strip().split("/?token=")
                return
        raise RuntimeError("the studio exited before printing its address")

    def call(self, method: str, route: str, body: dict | None = None, raw: bytes | None = None):
        separator = "&" if "?" in route else "?"
        headers = {"content-type": "application/json"} if body is not None else {}
        data = raw if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}{route}{separator}token={self.token}", data, headers, method=method
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            return json.load(answer)

    def until(self, job: dict, done) -> dict:
        """Polls the job until ``done(job)`` or it has ended."""
        while job["state"] in ("waiting", "running") and not done(job):
            time.sleep(POLL_S)
            job = self.call("GET", f"/api/jobs/{job['id']}")
        return job

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def timed(studio: Studio, video: Path, box, size) -> list[str]:
    """One row: upload, track and each mode's first frame and whole run, in seconds."""
    start = time.perf_counter()
    clip_id = studio.call("POST", "/api/clips?name=clip.mp4", raw=video.read_bytes())["id"]
    upload = time.perf_counter() - start
    start = time.perf_counter()
    keyframes = [{"frame": 0, "boxes": [list(box)]}]
    job = studio.call("POST", f"/api/clips/{clip_id}/track", {"keyframes": keyframes})
    job = studio.until(job, lambda job: False)
    if job["state"] != "done":
        raise RuntimeError(f"tracking {job['state']}: {job['message']}")
    cells = [f"{upload:.1f}", f"{time.perf_counter() - start:.1f}"]
    for mode in MODES:
        start = time.perf_counter()
        body = {"dilate": default_dilate(size), "mode": mode}
        job = studio.call("POST", f"/api/clips/{clip_id}/inpaint", body)
        job = studio.until(job, lambda job: job["done"] >= 1)
        first = time.perf_counter() - start
        job = studio.until(job, lambda job: False)
        if job["state"] != "done":
            raise RuntimeError(f"inpainting {job['state']}: {job['message']}")
        whole = time.perf_counter() - start
        cells += [f"{first:.1f}", f"{whole:.1f}", f"{job['done'] / whole:.1f}"]
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_run_arguments(parser, "one short 432x240 clip")
    parser.add_argument("--seeds", type=int, default=3, help="clips (default %(default)s)")
    parser.add_argument("--note", default=None, help="a line on the run's conditions")
    args = parser.parse_args(argv)
    common.configure(args.quick, args.budget_s)
    size, frames = (QUICK_SIZE, QUICK_FRAMES) if args.quick else (SIZE, FRAMES)
    seeds = range(1 if args.quick else args.seeds)
    env = common.environment()
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    columns = ["clip", "upload (s)", "track (s)"]
    for mode in MODES:
        columns += [f"{mode}: first frame (s)", f"{mode}: all frames (s)", f"{mode}: frames/s"]
    rows = []
    studio = Studio()
    try:
        with tempfile.TemporaryDirectory() as folder:
            for seed in seeds:
                if common.budget_spent():
                    rows.append([str(seed), *[common.NOT_MEASURED] * (len(columns) - 1)])
                    continue
                clip = object_removal_clip(seed, frames, *size)
                video = Path(folder) / f"clip{seed}.mp4"
                with io.VideoWriter(video, FPS) as writer:
                    for frame in clip.frames:
                        writer.write(frame)
                rows.append([str(seed), *timed(studio, video, clip.box, size)])
                print(" | ".join(rows[-1]), flush=True)
    finally:
        studio.close()
    facts = [
        f"clips: `fused_inpaint.data.object_removal_clip(seed, {frames}, {size[0]}, "
        f"{size[1]})`, written as MP4 at {FPS} frames/s; the box: the object's on frame 0",
        "the server: `fused-inpaint studio --port 0` in its own process, driven over HTTP as "
        "the page drives it; upload: until the clip is open; track: until the masks are; "
        "first frame: from Inpaint until the job reports its first frame done (the page then "
        "shows it); all frames: until the job is done (result video, lossless PNGs and mask "
        f"video written); dilation {default_dilate(size)} pixels (the page's default)",
        f"load average (1, 5, 15 min) at the start: {load}",
    ]
    notes = [args.note] if args.note else []
    table = "\n".join(
        [common.table_line(columns), common.table_line(["---"] + ["--:"] * (len(columns) - 1))]
        + [common.table_line(row) for row in rows]
    )
    text = common.header(NAME, env, facts, notes) + "\n\n" + table + "\n"
    print(f"wrote {common.write_report(args.out, NAME, env, text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
