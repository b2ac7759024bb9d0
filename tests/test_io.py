"""Video, frame-folder and mask reading and writing (fused_inpaint.io)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from fused_inpaint import io


def random_frames(count: int = 5, height: int = 32, width: int = 48) -> np.ndarray:
    """(T, H, W, 3) uint8 frames: smooth gradients plus a little noise, which H.264 keeps."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:height, :width]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        base = np.stack([4 * x + 8 * t, 6 * y, 3 * (x + y)], axis=2) % 200 + 20
        frames[t] = base + rng.integers(0, 8, size=base.shape)
    return frames


def write_video(path, frames, fps=12):
    with io.VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


def test_png_folder_round_trip_is_exact(tmp_path):
    frames = random_frames()
    with io.PngFolderWriter(tmp_path / "out") as writer:
        for frame in frames:
            writer.write(frame)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"{i:05d}.png" for i in range(len(frames))]
    source = io.open_frames(tmp_path / "out")
    assert (source.size, source.count, source.fps) == ((32, 48), len(frames), None)
    np.testing.assert_array_equal(np.stack(list(source)), frames)


def test_frame_folder_order_is_numeric_and_skips_other_files(tmp_path):
    frames = random_frames(count=3)
    for frame, name in zip(frames, ["f2.png", "f10.png", "f1.png"], strict=True):
        Image.fromarray(frame).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a frame")
    Image.fromarray(frames[0]).save(tmp_path / ".hidden.png")
    source = io.open_frames(tmp_path)
    assert [p.name for p in source.files] == ["f1.png", "f2.png", "f10.png"]
    np.testing.assert_array_equal(np.stack(list(source)), frames[[2, 0, 1]])


def test_frames_of_gray_and_rgba_images_are_rgb(tmp_path):
    Image.new("L", (6, 4), 90).save(tmp_path / "a.png")
    Image.new("RGBA", (6, 4), (10, 20, 30, 0)).save(tmp_path / "b.png")
    a, b = io.open_frames(tmp_path)
    assert a.shape == b.shape == (4, 6, 3) and a.flags.writeable
    assert (a == 90).all() and (b == [10, 20, 30]).all()


def test_video_round_trip(tmp_path):
    frames = random_frames(count=6)
    write_video(tmp_path / "clip.mp4", frames, fps=Fraction(30000, 1001))
    source = io.open_frames(tmp_path / "clip.mp4")
    assert source.size == (32, 48) and source.fps == Fraction(30000, 1001)
    decoded = np.stack(list(source))
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 4  # CRF 18 H.264
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("extension", [".mkv", ".mov", ".avi", ".webm"])
def test_every_video_extension_writes(tmp_path, extension):
    frames = random_frames(count=3)
    write_video(tmp_path / f"clip{extension}", frames)
    assert len(list(io.open_frames(tmp_path / f"clip{extension}"))) == 3


def test_odd_sizes_are_padded_by_repeating_the_edge(tmp_path):
    frames = random_frames(count=2, height=31, width=45)
    write_video(tmp_path / "odd.mp4", frames)
    source = io.open_frames(tmp_path / "odd.mp4")
    assert source.size == (32, 46)
    decoded = np.stack(list(source)).astype(int)
    assert np.abs(decoded[:, :31, :45] - frames).mean() < 4
    assert np.abs(decoded[:, 31, :45] - frames[:, 30]).mean() < 6


@pytest.mark.parametrize("kind", ["video", "folder"])
def test_failed_output_leaves_nothing(tmp_path, kind):
    path = tmp_path / ("out.mp4" if kind == "video" else "out")
    with pytest.raises(RuntimeError, match="stop"):
        with io.open_writer(path, 25) as writer:
            writer.write(random_frames(count=1)[0])
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_output_with_no_frames_is_an_error_and_leaves_nothing(tmp_path):
    for path in (tmp_path / "out.mp4", tmp_path / "out"):
        with pytest.raises(io.MediaError, match="no frames"):
            with io.open_writer(path):
                pass
    assert list(tmp_path.iterdir()) == []


def test_png_folder_output_replaces_only_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with io.PngFolderWriter(tmp_path / "empty") as writer:
        writer.write(random_frames(count=1)[0])
    assert [p.name for p in (tmp_path / "empty").iterdir()] == ["00000.png"]
    with pytest.raises(io.MediaError, match="not empty"):
        io.PngFolderWriter(tmp_path / "empty")
    # Told to overwrite, a finished folder takes the old one's place; the old one goes.
    with io.PngFolderWriter(tmp_path / "empty", overwrite=True) as writer:
        for frame in random_frames(count=2):
            writer.write(frame)
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["00000.png", "00001.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_an_existing_video_is_replaced_only_when_told(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_text("old")
    with pytest.raises(io.MediaError, match="a file that exists"):
        io.VideoWriter(path)
    with io.VideoWriter(path, overwrite=True) as writer:
        writer.write(random_frames(count=1)[0])
    assert len(list(io.open_frames(path))) == 1
    with pytest.raises(io.MediaError, match="it is a file"):
        io.PngFolderWriter(path, overwrite=True)


def test_unwritable_destinations(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(io.MediaError, match="does not exist"):
        io.VideoWriter(tmp_path / "missing" / "out.mp4")
    with pytest.raises(io.MediaError, match="does not exist"):
        io.PngFolderWriter(tmp_path / "file" / "frames")
    with pytest.raises(io.MediaError, match="it is a file"):
        io.PngFolderWriter(tmp_path / "file")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(io.MediaError, match="it is a folder"):
        io.VideoWriter(tmp_path / "folder.mp4")


def test_unreadable_inputs(tmp_path):
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "0.png").write_bytes(b"not a png")
    with pytest.raises(io.MediaError, match="not found"):
        io.open_frames(tmp_path / "missing.mp4")
    with pytest.raises(io.MediaError, match="cannot read video"):
        io.open_frames(tmp_path / "text.mp4")
    with pytest.raises(io.MediaError, match="holds no images"):
        io.open_frames(tmp_path / "empty")
    with pytest.raises(io.MediaError, match="cannot read image"):
        io.open_frames(tmp_path / "broken")
    with pytest.raises(io.MediaError, match="mask not found"):
        io.Masks(tmp_path / "missing.png")


def palette_image() -> Image.Image:
    """A palette image whose index 0 is a nonzero color and index 1 black: all index 1."""
    image = Image.new("P", (5, 4), 1)
    image.putpalette([0, 3, 0, 0, 0, 0] + [0] * 762)
    return image


@pytest.mark.parametrize(
    "image, hole_value",
    [
        (Image.new("L", (5, 4)), 1),
        (Image.new("1", (5, 4)), 1),
        (Image.new("RGB", (5, 4)), (0, 0, 1)),
        (palette_image(), 0),  # the color counts, not the index
    ],
    ids=["L", "1", "RGB", "P"],
)
def test_mask_image_hole_is_any_nonzero_pixel(tmp_path, image, hole_value):
    image.putpixel((1, 2), hole_value)
    image.save(tmp_path / "mask.png")
    masks = io.Masks(tmp_path / "mask.png")
    expected = np.zeros((4, 5), dtype=bool)
    expected[2, 1] = True
    assert masks.count is None
    np.testing.assert_array_equal(masks.static, expected)
    assert masks.for_inpainter() is masks.static


def test_mask_folder_and_mask_video(tmp_path):
    holes = np.zeros((3, 16, 24), dtype=bool)
    for t in range(3):
        holes[t, 4:10, 2 + 4 * t : 10 + 4 * t] = True
    (tmp_path / "masks").mkdir()
    for t, hole in enumerate(holes):
        Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "masks" / f"{t}.png")
    folder = io.Masks(tmp_path / "masks")
    assert (folder.size, folder.count, folder.static) == ((16, 24), 3, None)
    np.testing.assert_array_equal(np.stack(list(folder.for_inpainter())), holes)

    write_video(tmp_path / "mask.mp4", np.repeat(holes[..., None] * np.uint8(255), 3, axis=3))
    video = io.Masks(tmp_path / "mask.mp4")
    assert (video.size, video.count) == ((16, 24), None)
    np.testing.assert_array_equal(np.stack(list(video.per_frame())), holes)


def test_dilate_grows_by_exactly_n_pixels_along_the_axes():
    hole = np.zeros((21, 21), dtype=bool)
    hole[10, 10] = True
    np.testing.assert_array_equal(io.dilate_hole(hole, 0), hole)
    square = io.dilate_hole(hole, 1)
    assert square.sum() == 9 and square[9:12, 9:12].all()
    for n in (2, 3, 6):
        grown = io.dilate_hole(hole, n)
        rows, cols = np.nonzero(grown)
        assert rows.min() == cols.min() == 10 - n and rows.max() == cols.max() == 10 + n
        assert not grown[10 - n, 10 - n]  # corners cut: an octagon, not a square
        assert (grown >= io.dilate_hole(hole, n - 1)).all()


def _grown_step_by_step(hole: np.ndarray, pixels: int) -> np.ndarray:
    """The definition: ``pixels`` steps, a 3x3 square first, then a 3x3 cross, in turn;
    nothing comes in from outside the frame."""
    grown = hole.copy()
    for step in range(pixels):
        padded = np.pad(grown, 1)
        shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        if step % 2:
            shifts = [(dy, dx) for dy, dx in shifts if dy == 0 or dx == 0]
        h, w = grown.shape
        grown = np.logical_or.reduce(
            [padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in shifts]
        )
    return grown


def test_dilate_is_the_steps_grown_at_once():
    rng = np.random.default_rng(0)
    for _ in range(150):
        height, width = (int(v) for v in rng.integers(1, 48, 2))
        hole = rng.random((height, width)) < rng.choice([0.003, 0.03, 0.3])
        pixels = int(rng.integers(0, min(height + width, 40)))
        np.testing.assert_array_equal(
            io.dilate_hole(hole, pixels), _grown_step_by_step(hole, pixels), err_msg=f"{pixels}"
        )
    # Past 255 pixels of crosses, where 8-bit distances saturate: a point grows into the
    # octagon of s squares' and c crosses' steps, max(|dx| - s, 0) + max(|dy| - s, 0) <= c.
    hole = np.zeros((1101, 1103), dtype=bool)
    hole[550, 551] = True
    dy, dx = (np.abs(axis) for axis in np.ogrid[-550:551, -551:552])
    for pixels in (509, 510, 511, 540):
        squares, crosses = (pixels + 1) // 2, pixels // 2
        octagon = np.maximum(dx - squares, 0) + np.maximum(dy - squares, 0) <= crosses
        np.testing.assert_array_equal(io.dilate_hole(hole, pixels), octagon, err_msg=f"{pixels}")


def test_a_mask_video_of_odd_sized_frames_is_read_at_their_size(tmp_path):
    # VideoWriter pads odd sides to even (yuv420p): such masks still fit their frames.
    holes = np.zeros((3, 7, 9), dtype=bool)
    holes[:, 2:5, 3:8] = True
    holes[1, -1, -1] = True  # on the last row and column, which the padding repeats
    path = tmp_path / "masks.mp4"
    with io.VideoWriter(path, 10) as writer:
        for hole in holes:
            writer.write(np.repeat(hole[..., None] * np.uint8(255), 3, axis=2))
    assert io.Masks(path).size == (8, 10)
    masks = io.Masks(path, frame_size=(7, 9))
    assert masks.size == (7, 9)
    np.testing.assert_array_equal(np.stack(list(masks.per_frame())), holes)
    assert io.Masks(path, frame_size=(6, 9)).size == (8, 10)  # not a padding: kept, refused


def test_masks_are_dilated(tmp_path):
    hole = np.zeros((16, 16), dtype=np.uint8)
    hole[8, 8] = 255
    Image.fromarray(hole).save(tmp_path / "mask.png")
    (tmp_path / "masks").mkdir()
    Image.fromarray(hole).save(tmp_path / "masks" / "0.png")
    expected = io.dilate_hole(hole != 0, 3)
    np.testing.assert_array_equal(io.Masks(tmp_path / "mask.png", dilate=3).static, expected)
    (per_frame,) = io.Masks(tmp_path / "masks", dilate=3).per_frame()
    np.testing.assert_array_equal(per_frame, expected)


def test_a_hole_grown_past_the_frame_is_the_frame():
    hole = np.zeros((5, 7), dtype=bool)
    hole[0, 0] = True  # a corner: the farthest pixel is H + W - 2 away along the axes
    grown = io.dilate_hole(hole, 5 + 7 - 1)  # below the shortcut: the steps themselves
    assert grown.all() and io.dilate_hole(hole, 5 + 7).all()
    assert not io.dilate_hole(hole, 5).all()
    assert io.dilate_hole(hole, 10**12).all()  # at once
    assert not io.dilate_hole(np.zeros((5, 7), dtype=bool), 10**12).any()


def test_a_video_is_written_only_at_a_rate_it_can_hold(tmp_path):
    assert io.frame_rate(None) == io.DEFAULT_FPS
    assert io.frame_rate(30000 / 1001) == Fraction(30000, 1001)
    assert io.frame_rate(io.MIN_FPS) > 0 and io.frame_rate(io.MAX_FPS) == io.MAX_FPS
    for fps in (0, -1, io.MAX_FPS * 1.01, io.MIN_FPS / 2, float("nan"), float("inf")):
        with pytest.raises(io.MediaError, match="out.mp4: fps must be between"):
            io.VideoWriter(tmp_path / "out.mp4", fps)
    assert list(tmp_path.iterdir()) == []


def test_write_png(tmp_path):
    image = random_frames(count=1)[0]
    io.write_png(tmp_path / "a.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), image)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channel_max_is_the_largest_channel(dtype, channels):
    image = (np.random.default_rng(channels).random((7, 9, channels)) * 300).astype(dtype)
    if dtype == np.float32:
        image[2, 3, channels - 1] = np.nan  # NaN wins, as in numpy's max
    expected = image.max(axis=2)
    got = io.channel_max(image[:, ::-1])  # a strided view, as a crop of a frame is
    np.testing.assert_array_equal(got, expected[:, ::-1])
    assert got.dtype == expected.dtype


def test_a_mask_frame_is_white_on_the_mask_and_read_back_as_it():
    mask = np.random.default_rng(0).random((9, 14)) < 0.3
    frame = io.mask_frame(mask[:, ::-1])  # a view, as a crop is
    assert frame.shape == (9, 14, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, np.repeat(mask[:, ::-1, None], 3, axis=2) * 255)
    np.testing.assert_array_equal(io.mask_of_frame(frame), mask[:, ::-1])
