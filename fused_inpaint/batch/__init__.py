"""Many videos, and long videos, inpainted on many workers: the ``batch`` command.

``manifest`` reads the rows (a CSV or JSON Lines manifest, or a folder of videos with a
folder of masks), ``segments`` cuts a long clip into segments that come out exactly as in
one run, ``worker`` inpaints a row or a segment and ``join`` makes one output of the
segments, ``cluster`` runs it all on Ray actors (the optional ``batch`` extra) and
``summary`` tells what happened to each row.
"""

from fused_inpaint.batch.manifest import ManifestError, Row, read_manifest, rows_from_folders
from fused_inpaint.batch.segments import Span, plan
from fused_inpaint.batch.summary import Outcome, summary

__all__ = [
    "ManifestError",
    "Outcome",
    "Row",
    "Span",
    "plan",
    "read_manifest",
    "rows_from_folders",
    "summary",
]
