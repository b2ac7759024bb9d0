"""The batch on Ray: worker actors that load the network once and take tasks as they free
up, Ray's restarts and retries for a worker that dies, one progress bar, the summary.

Ray starts here when no cluster is given (``ray.init()`` on this machine's CPUs), or
this joins one (``address``: "auto", "ray://host:port"). Each worker is an actor with
``cpus`` CPUs (its DIS and network threads) and ``gpus`` GPUs; a killed worker is
restarted and its task run again, at most ``retries`` times each.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable

import ray
from ray.exceptions import RayActorError, RayTaskError
from tqdm import tqdm

from fused_inpaint import io
from fused_inpaint.batch import segments
from fused_inpaint.batch.manifest import Row
from fused_inpaint.batch.summary import Outcome
from fused_inpaint.batch.worker import Task, Worker, parts_folder, remove_leftovers
from fused_inpaint.pipeline import inpainter as inpainting

POLL_S = 0.25  # how often the driver reads the workers' progress
REPORT_S = 0.5  # how often a worker sends it


@ray.remote(num_cpus=0)
class Progress:
    """Frames written per task and the workers (process ids) that started it."""

    def __init__(self):
        self.frames: dict[str, int] = {}
        self.starts: dict[str, list[int]] = {}

    def started(self, key: str, pid: int) -> None:
        self.starts.setdefault(key, []).append(pid)
        self.frames[key] = 0

    def wrote(self, key: str, frames: int) -> None:
        self.frames[key] = frames

    def read(self) -> tuple[dict, dict]:
        return self.frames, self.starts


class WorkerActor:
    """A Worker in an actor: tells ``progress`` when it starts a task and how far it got."""

    def __init__(self, progress: str, **worker_options):
        # Looked up by name: a handle among the arguments would have to outlive restarts.
        self.progress = ray.get_actor(progress)
        self.worker = Worker(**worker_options)

    def ready(self) -> int:
        return os.getpid()

    def run(self, task: Task) -> dict:
        ray.get(self.progress.started.remote(task.key, os.getpid()))
        last = 0.0

        def report(frames: int) -> None:
            nonlocal last
            if time.monotonic() - last >= REPORT_S:
                last = time.monotonic()
                self.progress.wrote.remote(task.key, frames)

        result = self.worker.run(task, report)
        if "frames" in result and not task.join:
            ray.get(self.progress.wrote.remote(task.key, result["frames"]))
        return result


def start(address: str | None, cpus: int | None) -> None:
    """Joins the cluster at ``address``, or starts Ray on this machine with ``cpus`` CPUs
    (default: all), unless this process already runs Ray."""
    if ray.is_initialized():
        return
    # ray.init makes SIGTERM exit at once; the caller's handler stops the batch cleanly.
    on_terminate = signal.getsignal(signal.SIGTERM)
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=cpus or os.cpu_count(), log_to_driver=False)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_terminate)


def default_workers(cpus: float, gpus: float) -> int:
    """As many workers as the cluster's GPUs (``gpus`` each) or CPUs (``cpus`` each) hold."""
    resources = ray.cluster_resources()
    if gpus:
        return max(1, int(resources.get("GPU", 0) // gpus))
    return max(1, int(resources.get("CPU", 1) // cpus))


class Batch:
    """Runs rows on ``workers`` actors; see the module docstring. ``settings``: the
    pipeline options of every row (a row's own options over them); ``segment``: frames
    per segment of a long clip (0: never split); ``threads``: each worker's DIS and
    network threads (default: its CPUs); ``watch(frames, starts)``: called with
    the progress (task key -> frames written, task key -> process ids that started it)
    whenever it is read."""

    def __init__(
        self,
        rows: list[Row],
        settings: dict,
        *,
        workers: int,
        cpus: float = 1,
        gpus: float = 0,
        segment: int = 0,
        retries: int = 2,
        threads: int | None = None,
        worker_options: dict | None = None,
        progress_bar: bool = True,
        watch: Callable[[dict, dict], None] | None = None,
    ):
        self.settings, self.segment, self.watch = settings, segment, watch
        self.outcomes = [Outcome(row) for row in rows]
        self.queue: deque[tuple[Outcome, Task]] = deque()
        name = f"fused-inpaint-progress-{secrets.token_hex(4)}"
        self.progress = Progress.options(name=name).remote()
        options = dict(worker_options or {}, threads=threads or max(1, int(cpus)))
        actor = ray.remote(WorkerActor).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=retries, max_task_retries=retries
        )
        self.actors = [actor.remote(name, **options) for _ in range(workers)]
        self.progress_bar = progress_bar

    def _plan(self, outcome: Outcome, number: int) -> None:
        """Queues the row's tasks, or settles it (skipped, failed) without any."""
        row = outcome.row
        if row.output.exists() and not (row.output.is_dir() and not any(row.output.iterdir())):
            outcome.status = "skipped"
            return
        if row.problem:
            self._fail(outcome, row.problem)
            return
        settings = {**self.settings, **row.options}
        try:
            schedule = inpainting.schedule(
                settings["mode"], settings["chunk"], settings["overlap"],
                settings["lookahead"], settings["max_age"],
            )  # fmt: skip
            source = io.open_frames(row.input)
            outcome.estimated = source.estimated_count
            spans = []
            long = (outcome.estimated or 0) > self.segment > 0 and not row.boxes
            if long:
                outcome.estimated = segments.frame_count(row.input)
                masks = segments.mask_count(row.mask)
                if masks not in (None, outcome.estimated):
                    raise ValueError(
                        f"{masks} masks in {row.mask} for {outcome.estimated} frames in {row.input}"
                    )
                spans = segments.plan(outcome.estimated, self.segment, schedule)
        except (ValueError, OSError, io.MediaError) as error:
            self._fail(outcome, error)
            return
        key = str(number)
        if len(spans) <= 1:
            tasks = [Task(key, row, settings)]
        else:
            parts = parts_folder(row.output)
            tasks = [
                Task(f"{key}/{k}", row, settings, span, k, parts) for k, span in enumerate(spans)
            ]
        outcome.segments, outcome.tasks_left = len(tasks), len(tasks)
        outcome.keys = [task.key for task in tasks]
        self.queue.extend((outcome, task) for task in tasks)

    def _fail(self, outcome: Outcome, reason) -> None:
        if outcome.status == "failed":
            return
        outcome.status = "failed"
        outcome.reason = reason if isinstance(reason, str) else " ".join(str(reason).split())
        self._clean(outcome)

    def _clean(self, outcome: Outcome) -> None:
        """Removes the partial outputs of a row that did not finish."""
        remove_leftovers(outcome.row.output)

    def _finished(self, outcome: Outcome, task: Task, result: dict) -> None:
        if outcome.status != "pending":  # the row failed while this task ran
            self._clean(outcome)  # what the task wrote since
            return
        if "error" in result:
            self._fail(outcome, result["error"])
            return
        outcome.seconds += result["seconds"]
        outcome.tasks_left -= 1
        if task.join or task.span is None:
            outcome.status, outcome.frames = "done", result["frames"]
        elif outcome.tasks_left == 0:  # every segment is written: join them
            join = Task(f"{task.key.split('/')[0]}/join", outcome.row, task.settings,
                        parts=task.parts, count=outcome.segments, join=True)  # fmt: skip
            outcome.tasks_left = 1
            outcome.keys.append(join.key)
            self.queue.appendleft((outcome, join))

    def wait_for_workers(self) -> None:
        """Returns once every worker has started (imported the package, taken its CPUs)."""
        ray.get([actor.ready.remote() for actor in self.actors])

    def run(self) -> list[Outcome]:
        """Runs every row; on Ctrl-C (or any error here) stops the workers, removes every
        partial output and raises it again (the outcomes say what finished)."""
        for number, outcome in enumerate(self.outcomes):
            self._plan(outcome, number)
        total = sum(o.estimated or 0 for o in self.outcomes if o.status == "pending")
        # Tasks go to started workers only: a worker the cluster has no room for yet
        # (more asked for than it holds) takes none until it starts.
        starting = {actor.ready.remote(): actor for actor in self.actors}
        idle: list = []
        running: dict = {}  # ObjectRef -> (actor, outcome, task)
        lost = "every worker died"
        shown = None if self.progress_bar else True  # None: on a terminal only
        bar = tqdm(total=total or None, unit="frame", desc="batch", disable=shown, leave=False)
        try:
            while self.queue or running:
                while idle and self.queue:
                    outcome, task = self.queue.popleft()
                    if outcome.status != "pending":
                        continue
                    actor = idle.pop()
                    running[actor.run.remote(task)] = (actor, outcome, task)
                if not (idle or running or starting):  # no worker left to run the rest
                    for outcome, _ in self.queue:
                        self._fail(outcome, lost)
                    self.queue.clear()
                    break
                done, _ = ray.wait([*running, *starting], num_returns=1, timeout=POLL_S)
                for ref in done:
                    if ref in starting:
                        actor = starting.pop(ref)
                        try:
                            ray.get(ref)
                            idle.append(actor)
                        except RayActorError as error:
                            lost = f"no worker could start: {error}"
                        continue
                    actor, outcome, task = running.pop(ref)
                    try:
                        self._finished(outcome, task, ray.get(ref))
                        idle.append(actor)
                    except (RayActorError, RayTaskError) as error:
                        self._read_progress()
                        times = outcome.retries + 1
                        self._fail(
                            outcome, f"its worker died {times} times: {type(error).__name__}"
                        )
                self._show(bar)
        except BaseException:  # Ctrl-C, or an error of the batch itself
            self._stop(running)
            raise
        finally:
            bar.close()
            self._show(None)
            for actor in (*self.actors, self.progress):
                ray.kill(actor)
        return self.outcomes

    def _read_progress(self) -> dict:
        """Frames written per task; updates the rows' retries (a task started again) and
        calls ``watch``."""
        frames, starts = ray.get(self.progress.read.remote())
        for outcome in self.outcomes:
            outcome.retries = sum(max(len(starts.get(k, [])) - 1, 0) for k in outcome.keys)
        if self.watch is not None:
            self.watch(frames, starts)
        return frames

    def _show(self, bar) -> None:
        """Reads the progress into the bar."""
        frames = self._read_progress()
        if bar is not None:
            finished = sum(o.status != "pending" for o in self.outcomes)
            bar.update(sum(frames.values()) - bar.n)  # less after a retry starts over
            bar.set_postfix_str(f"rows {finished}/{len(self.outcomes)}")

    def _stop(self, running: dict) -> None:
        """Kills the workers, waits until they are gone, removes unfinished outputs."""
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        if running:
            ray.wait(list(running), num_returns=len(running), timeout=10)
        for outcome in self.outcomes:
            if outcome.status == "pending":
                self._fail(outcome, "interrupted")
