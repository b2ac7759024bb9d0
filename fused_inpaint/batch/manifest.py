"""The rows of a batch: from a manifest (CSV or JSON Lines) or from a folder of videos and
a folder of masks matched by name.

A row names its ``input`` (video file or frame folder), its ``output`` (a video by its
extension, else a folder of PNGs, as ``run`` writes), and either a ``mask`` (image, image
folder or mask video) or a ``box`` around the object to remove on frame ``box_frame``
("x,y,w,h", several separated by ";"; in JSON a list of 4 numbers or of such lists).
Any of ``ROW_OPTIONS`` may be set per row; empty cells take the batch's value. Relative
paths are relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from fused_inpaint import io
from fused_inpaint.pipeline import MODES, SOURCES
from fused_inpaint.pipeline.flow import DIS_PRESETS

# Options a row may set, each with its type and, where it has them, its allowed values.
ROW_OPTIONS: dict[str, tuple[type, tuple | None]] = {
    "mode": (str, MODES),
    "flow": (str, SOURCES),
    "chunk": (int, None),
    "overlap": (int, None),
    "lookahead": (int, None),
    "max_age": (int, None),
    "dis_preset": (str, DIS_PRESETS),
    "dilate": (int, None),
    "fps": (float, None),
}
PATH_COLUMNS = ("input", "output", "mask")
COLUMNS = (*PATH_COLUMNS, "box", "box_frame", *ROW_OPTIONS)
Box = tuple[float, float, float, float]


class ManifestError(ValueError):
    """A manifest that cannot be read as rows; the message names the line."""


@dataclass(frozen=True)
class Row:
    """One video of a batch. ``problem``: why it fails before it starts (no mask found)."""

    input: Path
    output: Path
    mask: Path | None = None
    boxes: tuple[Box, ...] = ()
    box_frame: int = 0
    options: dict = field(default_factory=dict)
    problem: str | None = None

    def describe(self) -> dict:
        """The row as the summary shows it."""
        what = {"input": str(self.input), "output": str(self.output)}
        if self.mask is not None:
            what["mask"] = str(self.mask)
        if self.boxes:
            what["box"] = [list(box) for box in self.boxes]
        return what


def _boxes(value, where: str) -> tuple[Box, ...]:
    if isinstance(value, str):
        value = [part.replace(",", " ").split() for part in value.split(";") if part.strip()]
    elif value and not isinstance(value[0], (list, tuple)):
        value = [value]
    try:
        boxes = tuple(tuple(float(v) for v in box) for box in value)
    except (TypeError, ValueError):
        boxes = ()
    if not boxes or any(len(box) != 4 or box[2] <= 0 or box[3] <= 0 for box in boxes):
        raise ManifestError(f"{where}: box must be x,y,w,h with w, h > 0, got {value!r}")
    return boxes


def _option(name: str, value, where: str):
    kind, allowed = ROW_OPTIONS.get(name, (int, None))
    try:
        converted = kind(value)
        if kind is int and converted != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: {name} must be {kind.__name__}, got {value!r}") from None
    if allowed is not None and converted not in allowed:
        raise ManifestError(f"{where}: {name} must be one of {', '.join(allowed)}, got {value!r}")
    if kind is not str and not 0 <= converted < math.inf:
        raise ManifestError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    if name == "fps":
        try:
            io.frame_rate(converted)
        except ValueError as error:
            raise ManifestError(f"{where}: {error}") from None
    return converted


def parse_row(record: dict, base: Path, where: str) -> Row:
    """One manifest record (column -> value; empty values are unset) as a Row."""
    record = {k.strip(): v for k, v in record.items() if v not in (None, "")}
    unknown = sorted(set(record) - set(COLUMNS))
    if unknown:
        raise ManifestError(
            f"{where}: unknown column {unknown[0]!r} (columns: {', '.join(COLUMNS)})"
        )
    for name in ("input", "output"):
        if name not in record:
            raise ManifestError(f"{where}: no {name}")
    if ("mask" in record) == ("box" in record):
        raise ManifestError(f"{where}: give a mask or a box (one of them)")
    paths = {name: base / str(record[name]) for name in PATH_COLUMNS if name in record}
    options = {name: _option(name, record[name], where) for name in ROW_OPTIONS if name in record}
    box_frame = _option("box_frame", record.get("box_frame", 0), where)
    boxes = _boxes(record["box"], where) if "box" in record else ()
    return Row(paths["input"], paths["output"], paths.get("mask"), boxes, box_frame, options)


def read_manifest(path: Path) -> list[Row]:
    """The rows of a CSV (a header line naming the columns) or JSON Lines (``.jsonl``,
    ``.ndjson``: one object a line) manifest."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ManifestError(f"cannot read manifest {path}: {error.strerror}") from None
    base = path.parent
    rows = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ManifestError(f"{where}: not JSON: {error.msg}") from None
            if not isinstance(record, dict):
                raise ManifestError(f"{where}: a row is a JSON object")
            rows.append(parse_row(record, base, where))
    else:
        reader = csv.DictReader(text.splitlines())
        for record in reader:
            where = f"{path}:{reader.line_num}"
            if None in record:
                raise ManifestError(f"{where}: more cells than columns")
            if any((v or "").strip() for v in record.values()):
                rows.append(parse_row(record, base, where))
    if not rows:
        raise ManifestError(f"manifest {path} has no rows")
    check_outputs(rows)
    return rows


def check_outputs(rows: list[Row]) -> None:
    """Every row writes its own output, never an input of any row."""
    outputs: dict[Path, int] = {}
    inputs = {p.absolute() for row in rows for p in (row.input, row.mask) if p is not None}
    for number, row in enumerate(rows, 1):
        output = row.output.absolute()
        if output in outputs:
            raise ManifestError(f"rows {outputs[output]} and {number} both write {row.output}")
        if output in inputs:
            raise ManifestError(f"row {number} writes {row.output}, an input of the batch")
        outputs[output] = number


def _is_clip(path: Path) -> bool:
    return not path.name.startswith(".") and (
        path.is_dir() or path.suffix.lower() in (*io.VIDEO_EXTENSIONS, *io.OTHER_MEDIA_EXTENSIONS)
    )


def rows_from_folders(videos: Path, masks: Path, output: Path, extension: str) -> list[Row]:
    """A row for each video file or frame folder in ``videos``, its mask the entry of
    ``masks`` with the same name but for the extension (an image, a folder or a video),
    its output ``output``/NAME``extension`` ("" for a PNG folder). A video without a mask
    is a row that fails."""
    for folder, what in ((videos, "videos"), (masks, "masks")):
        if not folder.is_dir():
            raise ManifestError(f"{what} folder not found: {folder}")
    by_name: dict[str, list[Path]] = {}
    for mask in masks.iterdir():
        if not mask.name.startswith("."):
            by_name.setdefault(mask.stem if mask.is_file() else mask.name, []).append(mask)
    rows = []
    for clip in sorted((p for p in videos.iterdir() if _is_clip(p)), key=io._natural_key):
        name = clip.stem if clip.is_file() else clip.name
        found = by_name.get(name, [])
        target = output / f"{name}{extension}"
        if len(found) == 1:
            rows.append(Row(clip, target, found[0]))
        else:
            why = "no mask" if not found else f"{len(found)} masks"
            rows.append(Row(clip, target, problem=f"{why} named {name} in {masks}"))
    if not rows:
        raise ManifestError(f"{videos} holds no videos or frame folders")
    check_outputs(rows)
    return rows
