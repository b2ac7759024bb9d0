"""The studio's web app (FastAPI): the page, the clips, tracking and inpainting jobs.

Every route answers errors as ``{"error": "one line"}`` for the page to show. Files are
reached by the ids the server gave, never by a path: the page can read the opened clip's
frames and what the server wrote, nothing else.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fused_inpaint.pipeline import MODES, Inpainter
from fused_inpaint.studio import tracking
from fused_inpaint.studio.inpainting import OUTPUTS, Inpainting
from fused_inpaint.studio.jobs import DONE, FINISHED, Job, JobQueue
from fused_inpaint.studio.security import Guard
from fused_inpaint.studio.videos import Clip, ClipError, decode_mask, jpeg, overlay_png, read_clip

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 512 * 2**20
MAX_CLIP_BYTES = 2 * 2**30  # decoded frames of one clip: 10 s of 1080p fit
KEPT_CLIPS = 2  # opening another forgets the oldest
UPLOAD_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv"}
IMMUTABLE = {"cache-control": "private, max-age=3600, immutable"}


class KeyframeBody(BaseModel):
    frame: int = Field(ge=0)
    boxes: list[tuple[int, int, int, int]] = []
    mask: str | None = None  # a PNG as base64, painted: not transparent


class TrackBody(BaseModel):
    keyframes: list[KeyframeBody] = Field(max_length=10_000)


class InpaintBody(BaseModel):
    dilate: int = Field(ge=0, le=100)
    mode: Literal[MODES]  # type: ignore[valid-type]


class Studio:
    """What the server holds: its private folder, the clips and the job queues.

    ``make_inpainter(mode)``: the Inpainter for a mode; ``device``: its name, which names
    the queue its jobs wait in (one job at a time per device).
    """

    def __init__(
        self,
        make_inpainter: Callable[[str], Inpainter] | None = None,
        device: str = "default",
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        max_clip_bytes: int = MAX_CLIP_BYTES,
    ):
        self.make_inpainter = _cached(make_inpainter or (lambda mode: Inpainter(mode=mode)))
        self.max_upload_bytes, self.max_clip_bytes = max_upload_bytes, max_clip_bytes
        self.folder = Path(tempfile.mkdtemp(prefix="fused-inpaint-studio-"))  # mode 0700
        self.clips: OrderedDict[str, Clip] = OrderedDict()
        self.inpaintings: dict[str, Inpainting] = {}
        self.queues = {"track": JobQueue("track"), "inpaint": JobQueue(f"inpaint-{device}")}

    def open(self, path: Path, name: str) -> Clip:
        clip = read_clip(path, name, self.max_clip_bytes)
        self.clips[clip.id] = clip
        while len(self.clips) > KEPT_CLIPS:
            self.clips.popitem(last=False)
        return clip

    def clip(self, clip_id: str) -> Clip:
        clip = self.clips.get(clip_id)
        if clip is None:
            raise HTTPException(404, "this clip is no longer open: open it again")
        return clip

    def job(self, job_id: str) -> tuple[Job, JobQueue]:
        for queue in self.queues.values():
            job = queue.get(job_id)
            if job is not None:
                return job, queue
        raise HTTPException(404, "no such job")

    def describe(self, job: Job, queue: JobQueue) -> dict:
        return job.describe(queue.ahead_of(job))

    def close(self) -> None:
        """Cancels the jobs and removes the private folder with everything in it."""
        for queue in self.queues.values():
            queue.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _cached(make: Callable[[str], Inpainter]) -> Callable[[str], Inpainter]:
    """``make`` called once per mode (the network loads once)."""
    made: dict[str, Inpainter] = {}

    def inpainter(mode: str) -> Inpainter:
        if mode not in made:
            made[mode] = make(mode)
        return made[mode]

    return inpainter


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(studio: Studio, token: str, host: str, port: int, input_path: Path | None = None):
    """The ASGI app, behind ``Guard`` (token, Host, Origin); ``input_path`` opens first.

    The studio's folder is removed when the app shuts down."""

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            studio.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    if input_path is not None:
        studio.open(input_path, input_path.name)

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
            for e in error.errors()
        )
        return _error(422, f"invalid request: {problems}")

    @app.get("/")
    async def page():
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    @app.get("/api/state")
    async def state():
        return {
            "clips": [clip.describe() for clip in reversed(studio.clips.values())],
            "max_upload_bytes": studio.max_upload_bytes,
            "modes": list(MODES),
        }

    @app.post("/api/clips")
    async def upload(request: Request, name: str = "upload"):
        name = Path(name).name[:120] or "upload"
        declared = request.headers.get("content-length")
        limit = studio.max_upload_bytes
        too_large = f"{name} is larger than the upload limit of {limit / 2**20:.3g} MiB"
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _error(413, too_large)
        suffix = Path(name).suffix.lower()
        suffix = suffix if suffix in UPLOAD_SUFFIXES else ""  # a hint for FFmpeg's probe
        path = studio.folder / f"upload-{secrets.token_hex(8)}{suffix}"
        received = 0
        try:
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > limit:
                        return _error(413, too_large)
                    file.write(chunk)
            if received == 0:
                return _error(400, f"{name} is empty")
            clip = await run_in_threadpool(studio.open, path, name)
        except ClipError as error:
            return _error(400, str(error))
        finally:
            path.unlink(missing_ok=True)  # the frames are in memory now
        return clip.describe()

    @app.get("/api/clips/{clip_id}/frames/{index}.jpg")
    async def frame(clip_id: str, index: int):
        clip = studio.clip(clip_id)
        if not 0 <= index < len(clip.frames):
            raise HTTPException(404, f"no frame {index}")
        data = await run_in_threadpool(jpeg, clip.frames[index])
        return Response(data, media_type="image/jpeg", headers=IMMUTABLE)

    @app.get("/api/clips/{clip_id}/masks/{index}.png")
    async def mask(clip_id: str, index: int, version: int):
        clip = studio.clip(clip_id)
        masks = clip.masks
        if masks is None or version != clip.mask_version or not 0 <= index < len(masks):
            raise HTTPException(404, f"no mask {index} of version {version}")
        data = await run_in_threadpool(overlay_png, masks[index])
        return Response(data, media_type="image/png", headers=IMMUTABLE)

    @app.post("/api/clips/{clip_id}/track")
    async def track(clip_id: str, body: TrackBody):
        clip = studio.clip(clip_id)
        try:
            keyframes = {
                key.frame: tracking.Keyframe(
                    list(key.boxes), decode_mask(_base64(key.mask), clip.size) if key.mask else None
                )
                for key in body.keyframes
            }
            objects = tracking.checked(keyframes, clip.size, len(clip.frames))
        except (ClipError, ValueError) as error:  # said now, not when the job runs
            return _error(400, str(error))

        def run(job: Job) -> dict:
            def done() -> None:
                job.check_cancelled()
                job.advance()

            masks = tracking.track(clip.frames, objects, done)
            with clip.lock:
                clip.masks, clip.mask_version = masks, clip.mask_version + 1
                return {"mask_version": clip.mask_version,
                        "unmasked": tracking.unmasked_spans(masks.any(axis=(1, 2)))}  # fmt: skip

        queue = studio.queues["track"]
        return studio.describe(queue.submit(Job("track", run, len(clip.frames))), queue)

    @app.post("/api/clips/{clip_id}/inpaint")
    async def inpaint(clip_id: str, body: InpaintBody):
        clip = studio.clip(clip_id)
        if clip.masks is None:
            return _error(400, "track the object first: there is no mask to inpaint")
        queue = studio.queues["inpaint"]
        folder = studio.folder / f"job-{secrets.token_hex(8)}"
        work = Inpainting(clip, clip.masks, body.dilate, body.mode, folder, studio.make_inpainter)
        job = Job("inpaint", work, len(clip.frames))
        studio.inpaintings[job.id] = work
        queue.submit(job)
        return studio.describe(job, queue)

    @app.get("/api/jobs/{job_id}")
    async def job_state(job_id: str):
        job, queue = studio.job(job_id)
        answer = studio.describe(job, queue)
        if job.kind == "track" and job.state == DONE:
            answer.update(job.result)  # the masks' version, the frames left without one
        return answer

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel(job_id: str):
        job, queue = studio.job(job_id)
        if job.state not in FINISHED:
            queue.cancel(job)
        return studio.describe(job, queue)

    def inpainting(job_id: str) -> tuple[Job, Inpainting]:
        job, _ = studio.job(job_id)
        work = studio.inpaintings.get(job_id)
        if work is None:
            raise HTTPException(404, "not an inpainting job")
        return job, work

    @app.get("/api/jobs/{job_id}/frames/{index}.jpg")
    async def result_frame(job_id: str, index: int):
        _, work = inpainting(job_id)
        if not 0 <= index < len(work.previews):
            raise HTTPException(404, f"frame {index} is not done yet")
        return Response(work.previews[index], media_type="image/jpeg", headers=IMMUTABLE)

    @app.get("/api/jobs/{job_id}/download/{what}")
    async def download(job_id: str, what: Literal[tuple(OUTPUTS)]):  # type: ignore[valid-type]
        job, work = inpainting(job_id)
        if job.state != DONE:
            raise HTTPException(409, f"the job is {job.state}: nothing to download")
        media = "application/zip" if what == "frames" else "video/mp4"
        return FileResponse(work.path(what), media_type=media, filename=work.download_name(what))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return Guard(app, token, host, port)


def _base64(data: str) -> bytes:
    """A data URL's or plain base64 payload -> bytes."""
    try:
        return base64.b64decode(data.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise ClipError("a painted mask is not valid base64") from None
