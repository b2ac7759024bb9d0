"""What happened to each row of a batch, and the summary written from it (JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fused_inpaint.batch.manifest import Row

STATUSES = ("done", "skipped", "failed")


@dataclass
class Outcome:
    """What happened to a row (the summary's line)."""

    row: Row
    status: str = "pending"  # done, skipped, failed
    reason: str | None = None
    frames: int = 0
    seconds: float = 0.0
    segments: int = 0
    retries: int = 0
    tasks_left: int = 0
    estimated: int | None = None  # its frames, for the progress bar
    keys: list[str] = field(default_factory=list)

    def line(self) -> dict:
        line = {**self.row.describe(), "status": self.status}
        if self.reason:
            line["reason"] = self.reason
        line.update(frames=self.frames, seconds=round(self.seconds, 3))
        if self.segments > 1:
            line["segments"] = self.segments
        if self.retries:
            line["retries"] = self.retries
        return line


def summary(outcomes: list[Outcome], seconds: float) -> dict:
    """The batch's summary: counts, frames and seconds, then a line per row."""
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUSES}
    frames = sum(o.frames for o in outcomes if o.status == "done")
    return {
        **counts,
        "frames": frames,
        "seconds": round(seconds, 3),
        "frames_per_second": round(frames / seconds, 3) if seconds > 0 else None,
        "rows": [o.line() for o in outcomes],
    }
