"""One output from the parts that segments wrote, without re-encoding where it can.

MP4, MOV and WebM parts are joined by copying their packets, each part's timestamps
shifted by the parts before it (every part is one encode at the same rate, so the
timestamps run on without a gap). Matroska and AVI do not carry the decode times that
this needs: their parts are PNG folders, encoded once when joined. A PNG folder output
is its parts' frames linked in order.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av

from fused_inpaint import io

REMUX_EXTENSIONS = (".mp4", ".mov", ".webm")


def part_name(output: Path, index: int) -> str:
    """The name of part ``index`` of ``output``: a video of its kind where parts are
    joined by copying packets, else a PNG folder."""
    suffix = output.suffix.lower()
    return f"{index:05d}{suffix if suffix in REMUX_EXTENSIONS else ''}"


def _rename_into_place(temp: Path, output: Path) -> None:
    """Renames the finished ``temp`` to ``output``, which must not exist (or be an empty
    folder, which a PNG folder replaces)."""
    if output.exists() and not (output.is_dir() and not any(output.iterdir())):
        raise io.MediaError(f"cannot write {output}: it exists")
    os.replace(temp, output)


def _remux(parts: list[Path], temp: Path, container_format: str) -> int:
    """Copies the packets of ``parts`` into one video at ``temp``; returns its frames."""
    frames = 0
    with av.open(str(parts[0])) as first, av.open(str(temp), "w", format=container_format) as out:
        stream = out.add_stream_from_template(first.streams.video[0])
        offset = 0
        for part in parts:
            with av.open(str(part)) as source:
                video = source.streams.video[0]
                tick = round(1 / (video.average_rate * video.time_base))
                last = None
                for packet in source.demux(video):
                    if not packet.size:  # the demuxer's end marker
                        continue
                    last = packet.pts if last is None else max(last, packet.pts)
                    packet.pts += offset
                    if packet.dts is not None:
                        packet.dts += offset
                    packet.stream = stream
                    out.mux(packet)
                    frames += 1
                if last is None:
                    raise io.MediaError(f"part {part} holds no frames")
                offset += last + tick
    return frames


def _encode(parts: list[Path], output: Path, fps) -> int:
    with io.open_writer(output, fps) as writer:
        for part in parts:
            for frame in io.FrameFolder(part):
                writer.write(frame)
    return writer.count


def _pngs(parts: list[Path], temp: Path) -> int:
    """Links the parts' PNGs into ``temp`` renumbered: the parts stay whole until the
    output is in place, so a join that is cut short can run again."""
    temp.mkdir()
    count = 0
    for part in parts:
        for image in io.list_images(part):
            try:
                os.link(image, temp / f"{count:05d}.png")
            except OSError:  # a file system without hard links
                shutil.copyfile(image, temp / f"{count:05d}.png")
            count += 1
    return count


def join(parts: list[Path], output: Path, fps) -> int:
    """Writes ``output`` from ``parts`` (in order), atomically; returns its frames.
    ``fps``: the rate of an output encoded here."""
    suffix = output.suffix.lower()
    if io.is_video_path(output) and suffix not in REMUX_EXTENSIONS:
        return _encode(parts, output, fps)
    temp = io._partial_name(output)
    try:
        if suffix in REMUX_EXTENSIONS:
            frames = _remux(parts, temp, io.VIDEO_FORMATS[suffix][0])
        else:
            frames = _pngs(parts, temp)
        _rename_into_place(temp, output)
    except av.FFmpegError as error:
        raise io.MediaError(f"cannot join the parts of {output}: {error}") from None
    finally:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
    return frames
