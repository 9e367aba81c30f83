"""Video in, segmented video out: a tiny real video written from CamVid frames with cv2."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pixelwise.runtime.imageio import read_image


def test_segment_video_roundtrip(tiny_run, tmp_path):
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.inference.video import segment_video

    seg = Segmenter.load(tiny_run.best, device="cpu")
    src = tmp_path / "in.mp4"
    h, w = _camvid_video(seg, src, frames=6)[0].shape[:2]
    res = segment_video(seg, src, tmp_path / "out.mp4", mode="color", progress=False)
    assert res.frames == 6 and res.size == (w, h) and res.fps == pytest.approx(5.0)
    assert sum(res.class_areas.values()) == pytest.approx(1.0)
    cap = cv2.VideoCapture(str(res.path))
    ok, first = cap.read()
    n = 1
    while cap.read()[0]:
        n += 1
    cap.release()
    assert ok and n == 6 and first.shape == (h, w, 3)
    # the written frame is the colour map of the prediction (up to video compression)
    ref = seg.colorize(seg.predict(cv2.cvtColor(cv2.VideoCapture(str(src)).read()[1], cv2.COLOR_BGR2RGB)).labels)
    assert np.abs(cv2.cvtColor(first, cv2.COLOR_BGR2RGB).astype(int) - ref).mean() < 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]  # no staging file left


def test_bad_videos_fail_cleanly_and_leave_no_output(tiny_run, tmp_path):
    from pixelwise.errors import DatasetError
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.inference.video import segment_video

    seg = Segmenter.load(tiny_run.best, device="cpu")
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    for src, message in (("missing.mp4", "Video not found"), ("text.mp4", "Cannot open video"),
                         ("empty.mp4", "Cannot open video")):
        with pytest.raises(DatasetError, match=message):
            segment_video(seg, tmp_path / src, tmp_path / "out" / "x.mp4", progress=False)
    with pytest.raises(DatasetError, match="is the input video"):  # never written over the source
        segment_video(seg, tmp_path / "text.mp4", tmp_path / "text.mp4", progress=False)
    assert (tmp_path / "text.mp4").read_text() == "not a video"
    with pytest.raises(DatasetError, match="Unknown video mode"):
        segment_video(seg, tmp_path / "text.mp4", tmp_path / "out" / "x.mp4", mode="sepia", progress=False)
    # Frames that fail half-way (here the model raises on the third): no truncated video is left.
    frames = [read_image(f) for f in sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))]
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(tmp_path / "ok.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (w, h))
    for i in range(4):
        vw.write(cv2.cvtColor(frames[i % len(frames)], cv2.COLOR_RGB2BGR))
    vw.release()
    calls = []

    class FailsOnThird:
        names = seg.names

        def predict(self, image, **kw):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return seg.predict(image, **kw)

        def __getattr__(self, name):
            return getattr(seg, name)

    with pytest.raises(KeyboardInterrupt):
        segment_video(FailsOnThird(), tmp_path / "ok.mp4", tmp_path / "out" / "x.mp4", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def _camvid_video(seg, path: Path, frames: int = 4, fourcc: str = "mp4v") -> list[np.ndarray]:
    """A small video of CamVid val frames at 5 fps; returns the frames as OpenCV decodes them (RGB)."""
    images = [read_image(f) for f in sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))]
    h, w = images[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 5.0, (w, h))
    for i in range(frames):
        vw.write(cv2.cvtColor(images[i % len(images)], cv2.COLOR_RGB2BGR))
    vw.release()
    return [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in _read_frames(path)]


def _read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_label_video_is_lossless_class_indices(tiny_run, tmp_path):
    """Label frames went through mp4v, which changes class indices at every edge; they are
    written with FFV1 now, and read back equal to the predictions."""
    from pixelwise.errors import DatasetError
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.inference.video import segment_video

    seg = Segmenter.load(tiny_run.best, device="cpu")
    decoded = _camvid_video(seg, tmp_path / "in.mp4")
    res = segment_video(seg, tmp_path / "in.mp4", tmp_path / "labels.mkv", mode="labels", progress=False)
    written = _read_frames(res.path)
    assert res.frames == len(written) == len(decoded) == 4
    for frame, image in zip(written, decoded):
        expected = seg.predict(image).labels
        assert (frame == frame[..., :1]).all()  # grey: every channel is the label map
        np.testing.assert_array_equal(frame[..., 0], expected)
    with pytest.raises(DatasetError, match=r"lossless FFV1.*Fix: name the output labels\.mkv"):
        segment_video(seg, tmp_path / "in.mp4", tmp_path / "labels.mp4", mode="labels", progress=False)
    with pytest.raises(DatasetError, match=r"Fix: name the output overlay\.mp4"):
        segment_video(seg, tmp_path / "in.mp4", tmp_path / "overlay.gif", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "labels.mkv"]


def test_cli_writes_the_chosen_video_kind(tiny_run, tmp_path, capsys):
    from pixelwise.cli import main
    from pixelwise.inference.predictor import Segmenter

    seg = Segmenter.load(tiny_run.best, device="cpu")
    _camvid_video(seg, tmp_path / "street.mp4", frames=2)
    out = tmp_path / "preds"
    assert main(["predict", str(tmp_path / "street.mp4"), "--model", str(tiny_run.best), "--out", str(out),
                 "--video", "labels", "--quiet"]) == 0
    assert "street_labels.mkv (2 frames at 5.0 fps)" in capsys.readouterr().out
    assert len(_read_frames(out / "street_labels.mkv")) == 2
    assert main(["predict", str(tmp_path / "street.mp4"), "--model", str(tiny_run.best), "--out", str(out),
                 "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["street_labels.mkv", "street_overlay.mp4"]
    image = sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))[0]
    assert main(["predict", str(image), "--model", str(tiny_run.best), "--out", str(out), "--video", "color"]) == 2
    assert "video mode 'color' (--video) applies to a video source" in capsys.readouterr().err
    for per_image in (["--save", "labels"], ["--confidence"], ["--areas"]):  # files per image, not per video
        assert main(["predict", str(tmp_path / "street.mp4"), "--model", str(tiny_run.best), "--out", str(out),
                     *per_image]) == 2
        assert f"{per_image[0]}: files per image, and " in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["street_labels.mkv", "street_overlay.mp4"]


def test_a_cut_video_is_written_as_far_as_it_decodes_with_a_warning(tiny_run, tmp_path):
    """A cut download used to be segmented silently, its missing frames unmentioned; and an
    unreadable file printed FFmpeg's own log line before pixelwise's one-line error."""
    import subprocess
    import sys
    import warnings

    from pixelwise.inference.predictor import Segmenter
    from pixelwise.inference.video import segment_video

    seg = Segmenter.load(tiny_run.best, device="cpu")
    whole = tmp_path / "whole.avi"
    assert len(_camvid_video(seg, whole, frames=8, fourcc="MJPG")) == 8
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 55 // 100])
    decodable = len(_read_frames(cut))
    assert 0 < decodable < 7
    with pytest.warns(UserWarning, match=f"declares 8 frames but only {decodable} could be decoded"):
        res = segment_video(seg, cut, tmp_path / "out.mp4", mode="color", progress=False)
    assert res.frames == decodable == len(_read_frames(res.path))
    with warnings.catch_warnings():  # stopping early on purpose is not a cut file
        warnings.simplefilter("error")
        segment_video(seg, whole, tmp_path / "whole_out.mp4", mode="color", progress=False, max_frames=3)
    (tmp_path / "fake.mp4").write_text("not a video")
    done = subprocess.run([sys.executable, "-m", "pixelwise.cli", "predict", str(tmp_path / "fake.mp4"), "--model",
                           str(tiny_run.best), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "moov atom" not in done.stderr, done.stderr



def test_odd_sized_videos_keep_every_pixel_and_out_can_name_the_file(tiny_run, tmp_path, capsys):
    """OpenCV's writers need even sizes and silently dropped a 481x359 video's last row and column,
    the lossless label video included; '--out x.mp4' made a folder; '.mpg' was taken for an image."""
    from pixelwise.cli import main
    from pixelwise.inference.predictor import Segmenter
    from pixelwise.inference.video import segment_video

    seg = Segmenter.load(tiny_run.best, device="cpu")
    image = read_image(sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))[0])
    h, w = image.shape[0] - 1 + image.shape[0] % 2, image.shape[1] - 1 + image.shape[1] % 2  # both odd
    src = tmp_path / "odd.avi"  # OpenCV's own MJPEG writer keeps odd sizes
    vw = cv2.VideoWriter(str(src), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (w, h))
    for _ in range(2):
        vw.write(cv2.cvtColor(np.ascontiguousarray(image[:h, :w]), cv2.COLOR_RGB2BGR))
    vw.release()
    decoded = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in _read_frames(src)]
    assert decoded[0].shape[:2] == (h, w)
    with pytest.warns(UserWarning, match=rf"is {w}x{h}; video codecs need even sizes.*crop frames to {w}x{h}"):
        res = segment_video(seg, src, tmp_path / "labels.mkv", mode="labels", progress=False)
    frames = _read_frames(res.path)
    assert res.size == (w + 1, h + 1) and frames[0].shape[:2] == (h + 1, w + 1)
    for frame, rgb in zip(frames, decoded):
        labels = seg.predict(rgb).labels
        np.testing.assert_array_equal(frame[:h, :w, 0], labels)
        np.testing.assert_array_equal(frame[h, :w, 0], labels[-1])  # the added row repeats the last
    assert main(["predict", str(src), "--model", str(tiny_run.best), "--out", str(tmp_path / "never"),
                 "--tile", "8"]) == 2  # refused before any folder is made
    assert "tile" in capsys.readouterr().err and not (tmp_path / "never").exists()
    mpg = tmp_path / "clip.mpg"
    mpg.write_bytes(src.read_bytes())  # any container OpenCV's FFmpeg opens; the suffix only routes it
    assert main(["predict", str(mpg), "--model", str(tiny_run.best), "--out", str(tmp_path / "named.mp4"),
                 "--quiet"]) == 0
    assert "video written: " + str(tmp_path / "named.mp4") in capsys.readouterr().out
    assert len(_read_frames(tmp_path / "named.mp4")) == 2


def test_the_python_verb_segments_a_video_and_folders_say_which_videos_they_leave_out(tiny_run, tmp_path):
    """pw.predict on a video said 'Cannot decode image ... corrupt'; a folder mixing images and
    videos skipped the videos without a word; a glob of videos was 'Video not found'; an existing
    folder named like a video failed after every frame; over 1000 fps became 25 silently."""
    import pixelwise as pw
    from pixelwise.cli import main
    from pixelwise.errors import ConfigError, DatasetError
    from pixelwise.inference.predictor import Segmenter

    seg = Segmenter.load(tiny_run.best, device="cpu")
    clips = tmp_path / "clips"
    clips.mkdir()
    _camvid_video(seg, clips / "street.mp4", frames=2)
    out = pw.predict(tiny_run.best, clips / "street.mp4", tmp_path / "out", video="labels", progress=False)
    assert out == [tmp_path / "out" / "street_labels.mkv"] and len(_read_frames(out[0])) == 2
    with pytest.raises(ConfigError, match="files per image, and"):
        pw.predict(tiny_run.best, clips / "street.mp4", tmp_path / "out", save_confidence=True)
    with pytest.raises(DatasetError, match=r"No images found in .*but 1 video"):
        pw.predict(tiny_run.best, str(clips / "*.mp4"), tmp_path / "out", progress=False)
    image = sorted(Path(seg.dataset_record()["val"]["images"]).glob("*.jpg"))[0]
    (clips / image.name).write_bytes(image.read_bytes())
    with pytest.warns(UserWarning, match=r"Left out 1 video\(s\) matched by .*street\.mp4"):
        written = pw.predict(tiny_run.best, clips, tmp_path / "mixed", progress=False)
    assert len(written) == 3 and all(p.suffix == ".png" for p in written)
    with pytest.raises(ConfigError, match="save_overlay: files per image"):  # an explicit choice, not ignored
        pw.predict(tiny_run.best, clips / "street.mp4", tmp_path / "out", save_overlay=False)
    from pixelwise.inference.video import segment_video
    from pixelwise.runtime.batch import expand_sources

    with pytest.raises(DatasetError, match="is a video: an image run cannot read it"):  # predict_folder, torchrun
        expand_sources(clips / "street.mp4")
    with pytest.raises(DatasetError, match="is a folder"):  # before any frame, not at the final rename
        segment_video(seg, clips / "street.mp4", clips, progress=False)
    literal = clips / "clip[1].mp4"  # a name with glob characters is that file, not 'clip1.mp4'
    literal.write_bytes((clips / "street.mp4").read_bytes())
    (clips / "clip1.png").write_bytes(image.read_bytes())
    assert pw.predict(tiny_run.best, literal, tmp_path / "lit", progress=False) == [tmp_path / "lit" / "clip[1]_overlay.mp4"]
    assert expand_sources(clips / "clip1.png") == [clips / "clip1.png"]
    literal.unlink()
    (clips / "clip1.png").unlink()
    folder = tmp_path / "late.mkv"  # an existing folder, whatever its name, gets the default name inside
    folder.mkdir()
    assert main(["predict", str(clips / "street.mp4"), "--model", str(tiny_run.best), "--out", str(folder),
                 "--video", "labels", "--quiet"]) == 0
    assert [p.name for p in folder.iterdir()] == ["street_labels.mkv"]
    fast = tmp_path / "fast.mp4"
    vw = cv2.VideoWriter(str(fast), cv2.VideoWriter_fourcc(*"mp4v"), 2400.0, (64, 48))
    for i in range(3):
        vw.write(np.full((48, 64, 3), 40 * i, np.uint8))
    vw.release()
    with pytest.warns(UserWarning, match="declares 2400 fps"):
        res = pw.predict(tiny_run.best, fast, tmp_path / "fast_out.mp4", video="color", progress=False)
    assert cv2.VideoCapture(str(res[0])).get(cv2.CAP_PROP_FPS) == pytest.approx(2400)


def test_sigterm_ends_a_command_through_its_cleanup(tmp_path):
    """kill (SIGTERM) left a video's hidden staging file behind; it now unwinds like Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys

    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from pixelwise.shutdown import sigterm_unwinds\n"
        f"staging = Path({str(tmp_path / '.x.partial.mp4')!r})\n"
        "with sigterm_unwinds():\n"
        "    try:\n"
        "        staging.write_text('half a video')\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        signal.pause()\n"
        "    finally:\n"
        "        staging.unlink()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGTERM, done.stderr  # ended by the signal, as the parent sent it
    assert "stopped by SIGTERM" in done.stderr and list(tmp_path.iterdir()) == []
    # a handler someone else set (here: ignore) is kept, and the default is back afterwards
    kept = subprocess.run([sys.executable, "-c", "import signal\nfrom pixelwise.shutdown import sigterm_unwinds\n"
                           "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwith sigterm_unwinds():\n"
                           "    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN\n"
                           "signal.signal(signal.SIGTERM, signal.SIG_DFL)\nwith sigterm_unwinds():\n"
                           "    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL\n"
                           "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL\n"],
                          capture_output=True, text=True, timeout=60)
    assert kept.returncode == 0, kept.stderr
    # After Ctrl-C (main's cleanup done, status 130) the console script ends by SIGINT itself, so a
    # shell loop around it stops, as around any program; it used to exit 130 and the loop went on.
    ended = subprocess.run([sys.executable, "-c", "import pixelwise.cli as cli\ncli.main = lambda: 130\ncli.run()\n"],
                           capture_output=True, text=True, timeout=60)
    assert ended.returncode == -signal.SIGINT, ended.stderr
    log = tmp_path / "log.txt"  # stdout to a file is block-buffered: flushed before the signal ends it
    with open(log, "w") as fh:
        done = subprocess.run([sys.executable, "-c", "import signal\nfrom pixelwise.shutdown import end_by\n"
                               "print('last epoch line')\nend_by(signal.SIGINT)\n"], stdout=fh, timeout=60,
                              env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"})
    assert done.returncode == -signal.SIGINT and log.read_text() == "last epoch line\n"
    log.unlink()
