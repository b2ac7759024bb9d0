"""The studio: a page in the browser to open a clip, mark an object on a few frames, track
it through the clip, inpaint it away and download the result.

``fused-inpaint studio [INPUT]`` serves it (``StudioServer``); ``create_app`` is the ASGI
app (FastAPI behind ``security.Guard``), ``Studio`` what it holds: the clips, the jobs
(one at a time per device) and a private folder removed when the server stops.
"""

from fused_inpaint.studio.app import Studio, create_app
from fused_inpaint.studio.server import StudioServer, is_local

__all__ = ["Studio", "StudioServer", "create_app", "is_local"]
