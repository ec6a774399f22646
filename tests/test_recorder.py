"""The recorder's MP4 decoded back: what a player shows is what was drawn."""
from __future__ import annotations

import re

import av
import numpy as np
import pytest

from realtime.cli import main
from realtime.recorder import Recorder, RecordItem

pytestmark = pytest.mark.usefixtures("engine_threads_joined")

# flat patches of colours where a wrong conversion shows: primaries and secondaries (swapped
# channels, another matrix), black and white (full against limited range), greys, skin tones
PATCH_COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255],
                          [0, 0, 0], [255, 255, 255], [64, 64, 64], [128, 128, 128], [192, 192, 192],
                          [224, 172, 105], [141, 85, 36], [255, 219, 172], [30, 60, 200], [200, 120, 40]],
                         np.uint8)
PATCH = 64  # pixels a side: a whole number of the encoder's 16 x 16 blocks


def test_recorded_colours_come_back_within_a_few_levels(tmp_path):
    columns = 4
    rows = len(PATCH_COLOURS) // columns
    image = np.kron(PATCH_COLOURS.reshape(rows, columns, 3), np.ones((PATCH, PATCH, 1), np.uint8))
    recorder = Recorder(tmp_path / "colours.mp4")
    for index in range(5):
        recorder.write(RecordItem(image=image, index=index, pts_s=index / 30))
    recorder.close()
    with av.open(str(tmp_path / "colours.mp4")) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 5
    inner = np.s_[PATCH // 4:-PATCH // 4, PATCH // 4:-PATCH // 4]  # away from the edges chroma is shared across
    for frame in decoded:
        assert frame.shape == image.shape
        for n, colour in enumerate(PATCH_COLOURS):
            row, column = divmod(n, columns)
            patch = frame[row * PATCH:(row + 1) * PATCH, column * PATCH:(column + 1) * PATCH][inner].astype(int)
            error = np.abs(patch - colour.astype(int)).max()
            assert error <= 6, f"{colour.tolist()} came back as {patch.mean(axis=(0, 1)).round().tolist()}"


def test_fine_colour_detail_keeps_its_mean_colour(tmp_path):
    """Columns one pixel wide, red and blue in turn: 4:2:0 video keeps one colour for each 2 x 2
    block, which must be the block's mean (taking one pixel's colour paints it all red)."""
    image = np.zeros((128, 128, 3), np.uint8)
    image[:, 0::2] = (255, 0, 0)
    image[:, 1::2] = (0, 0, 255)
    recorder = Recorder(tmp_path / "columns.mp4")
    recorder.write(RecordItem(image=image, index=0, pts_s=0.0))
    recorder.close()
    with av.open(str(tmp_path / "columns.mp4")) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    red, _, blue = decoded[16:-16, 16:-16].reshape(-1, 3).mean(axis=0)
    assert abs(red - blue) < 20, f"red {red:.0f}, blue {blue:.0f}: the mean of the two is {255 / 2:.0f} each"


def _x264_settings(path) -> dict[str, str]:
    """The settings libx264 wrote into the stream (its SEI text: "options: cabac=1 ref=3 ...")."""
    text = re.search(rb"x264 - core .*? options: ([^\x00]*)", path.read_bytes(), re.S)[1].decode()
    return dict(option.split("=", 1) for option in text.split())


def test_process_encodes_with_the_x264_preset_asked_for(single_clip, tmp_path):
    assert main(["process", str(single_clip), "-o", str(tmp_path / "ultrafast.mp4"), "--frames", "3",
                 "--x264-preset", "ultrafast", "--pose", "parser", "--person-mask", "parser"]) == 0
    recorder = Recorder(tmp_path / "default.mp4")
    recorder.write(RecordItem(image=np.zeros((64, 64, 3), np.uint8), index=0, pts_s=0.0))
    recorder.close()
    ultrafast, default = _x264_settings(tmp_path / "ultrafast.mp4"), _x264_settings(tmp_path / "default.mp4")
    assert (ultrafast["cabac"], ultrafast["me"], ultrafast["subme"]) == ("0", "dia", "0")  # x264's ultrafast
    assert (default["cabac"], default["me"], default["subme"]) == ("1", "hex", "2")  # veryfast
