"""The outputs of an aerial GeoTIFF are GeoTIFFs on the same grid: checked with tifffile, an
independent TIFF reader, on real files written and predicted on disk."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, TiffTags
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from pixelwise.runtime import RuntimeSegmenter
from pixelwise.runtime.batch import predict_folder
from pixelwise.runtime.georef import encode_geotiff, read_georef

# UTM zone 33N (EPSG:32633), 0.5 m pixels, upper-left corner at (500000, 4500000)
SCALE = (0.5, 0.5, 0.0)
TIEPOINT = (0.0, 0.0, 0.0, 500000.0, 4500000.0, 0.0)
GEOKEYS = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)
ASCII_PARAMS = "Réseau géodésique local|".encode()  # UTF-8 bytes: Pillow wrote '?' for each non-ASCII byte


def _geotiff(path: Path, image: np.ndarray, orientation: int | None = None) -> Path:
    ifd = ImageFileDirectory_v2()
    for tag, value, kind in ((33550, SCALE, TiffTags.DOUBLE), (33922, TIEPOINT, TiffTags.DOUBLE),
                             (34735, GEOKEYS, TiffTags.SHORT), (34737, ASCII_PARAMS, TiffTags.ASCII)):
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    if orientation is not None:
        ifd[274] = orientation
    Image.fromarray(image).save(path, tiffinfo=ifd, compression="tiff_lzw")
    return path


def _tags(path: Path) -> dict[str, object]:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return {name: page.tags[name].value for name in ("ModelPixelScaleTag", "ModelTiepointTag", "GeoKeyDirectoryTag",
                                                          "GeoAsciiParamsTag")}


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.kron(rng.integers(0, 256, (9, 11, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # 144x176


def test_the_outputs_of_a_geotiff_are_georeferenced_geotiffs(onnx_model, scene, tmp_path):
    src = tmp_path / "tiles"
    src.mkdir()
    geo = _geotiff(src / "ortho.tif", scene)
    Image.fromarray(scene).save(src / "plain.tif")  # a TIFF without georeferencing
    Image.fromarray(scene).save(src / "photo.jpg")
    seg = RuntimeSegmenter.load(onnx_model)
    out = tmp_path / "out"
    written = predict_folder(seg, src, out, save_overlay=True, save_confidence=True, progress=False)
    names = sorted(p.name for p in written)
    assert [n for n in names if n.startswith("ortho")] == [
        "ortho_color.tif", "ortho_confidence.tif", "ortho_labels.tif", "ortho_overlay.tif"]
    assert {"plain_labels.png", "photo_labels.png"} <= set(names)
    reference = _tags(geo)
    assert reference["GeoKeyDirectoryTag"]  # tifffile reads the input as a GeoTIFF
    assert "Réseau géodésique" in reference["GeoAsciiParamsTag"]  # kept byte for byte, not as 'R??seau
    expected = seg.predict(geo)
    for kind in ("labels", "color", "overlay", "confidence"):
        path = out / f"ortho_{kind}.tif"
        assert _tags(path) == reference, kind
        pixels = tifffile.imread(path)
        assert pixels.shape[:2] == scene.shape[:2], kind
    np.testing.assert_array_equal(tifffile.imread(out / "ortho_labels.tif"), expected.labels)
    np.testing.assert_array_equal(tifffile.imread(out / "ortho_color.tif"), seg.colorize(expected.labels))
    # A second run into the input folder leaves the first run's GeoTIFF outputs out of its inputs.
    predict_folder(seg, src, src, progress=False)  # labels and colour maps of the 3 images
    with pytest.warns(UserWarning, match="Left out 6 file"):
        again = predict_folder(seg, src, src, progress=False, save_color=False)
    assert sorted(p.name for p in again) == ["ortho_labels.tif", "photo_labels.png", "plain_labels.png"]


def test_only_upright_geotiffs_with_a_placement_carry_their_georeferencing(scene, tmp_path):
    assert read_georef(_geotiff(tmp_path / "a.tif", scene)).tags[33550][0] == SCALE
    # stored turned: read upright, so the input's grid no longer describes the outputs
    assert read_georef(_geotiff(tmp_path / "turned.tif", scene, orientation=6)) is None
    Image.fromarray(scene).save(tmp_path / "plain.tif")
    assert read_georef(tmp_path / "plain.tif") is None
    (tmp_path / "cut.tif").write_bytes((tmp_path / "a.tif").read_bytes()[:100])
    assert read_georef(tmp_path / "cut.tif") is None  # the pixel read reports it
    assert read_georef(tmp_path / "missing.tif") is None


def test_outputs_from_two_gib_are_bigtiff_with_the_same_tags(scene, tmp_path):
    """A classic TIFF stops at 4 GiB; Pillow writes BigTIFF only uncompressed (with deflate its
    big_tiff option was ignored). Forced here on a small map instead of writing 2 GiB."""
    georef = read_georef(_geotiff(tmp_path / "a.tif", scene))
    labels = (scene[..., 0] // 32).astype(np.int32)  # a model above 256 classes: int32 labels, stored 16-bit
    for big, magic in ((True, b"II+\0"), (False, b"II*\0")):
        out = tmp_path / f"big_{big}.tif"
        out.write_bytes(encode_geotiff(labels, georef, big=big))
        assert out.read_bytes()[:4] == magic
        assert _tags(out) == _tags(tmp_path / "a.tif")
        pixels = tifffile.imread(out)
        assert pixels.dtype == np.uint16 and np.array_equal(pixels, labels)  # 16-bit though every id < 256
