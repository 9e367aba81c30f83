"""The outputs of an aerial GeoTIFF are GeoTIFFs on the same grid, with its footprint: checked
with tifffile, an independent TIFF reader, on real files written and predicted on disk."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, TiffTags
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from pixelwise.runtime import RuntimeSegmenter
from pixelwise.runtime.batch import predict_folder
from pixelwise.runtime.footprint import outside_footprint
from pixelwise.runtime.georef import encode_geotiff, read_georef

# UTM zone 33N (EPSG:32633), 0.5 m pixels, upper-left corner at (500000, 4500000)
SCALE = (0.5, 0.5, 0.0)
TIEPOINT = (0.0, 0.0, 0.0, 500000.0, 4500000.0, 0.0)
GEOKEYS = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)
ASCII_PARAMS = "Réseau géodésique local|".encode()  # UTF-8 bytes: Pillow wrote '?' for each non-ASCII byte


def _geotiff(path: Path, image: np.ndarray, orientation: int | None = None, nodata: str | None = None) -> Path:
    ifd = ImageFileDirectory_v2()
    if nodata is not None:
        ifd[42113] = nodata  # GDAL_NODATA
        ifd.tagtype[42113] = TiffTags.ASCII
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


def test_a_tiff_placed_without_geokeys_keeps_its_tags(scene, tmp_path):
    ifd = ImageFileDirectory_v2()
    for tag, value in ((33550, SCALE), (33922, TIEPOINT)):
        ifd[tag] = value
        ifd.tagtype[tag] = TiffTags.DOUBLE
    Image.fromarray(scene).save(tmp_path / "n.tif", tiffinfo=ifd)
    assert set(read_georef(tmp_path / "n.tif").tags) == {33550, 33922}


def _geotiff_with_mask(path: Path, image: np.ndarray, inside: np.ndarray) -> Path:
    """A GeoTIFF with GDAL's internal mask: a 1-bit transparency-mask IFD after the image's."""
    geo = [(33550, "d", 3, SCALE, False), (33922, "d", 6, TIEPOINT, False), (34735, "H", len(GEOKEYS), GEOKEYS, False),
           (34737, "s", 0, ASCII_PARAMS, False)]
    with tifffile.TiffWriter(path) as tw:
        tw.write(image, photometric="rgb", extratags=geo, compression="zlib")
        tw.write(inside, photometric=4, subfiletype=4, compression="zlib")
    return path


@pytest.mark.parametrize("marked_by", ["nodata", "alpha", "mask"])
def test_an_orthomosaics_footprint_is_kept_in_its_outputs(onnx_model, scene, tmp_path, marked_by):
    """Pixels outside an orthomosaic's data (GDAL nodata value, or alpha 0) are "no data" in its
    outputs too, not labelled as a class, and its class areas are shares of the footprint."""
    src = tmp_path / "in"
    src.mkdir()
    image = scene.copy()
    outside = np.zeros(scene.shape[:2], bool)
    outside[:, :50] = True
    outside[100:, 120:] = True
    if marked_by == "nodata":
        image[outside] = 0
        image[~outside] = np.maximum(image[~outside], 1)  # no data pixel inside by chance
        _geotiff(src / "ortho.tif", image, nodata="0")
    elif marked_by == "alpha":
        _geotiff(src / "ortho.tif", np.dstack([image, np.where(outside, 0, 255).astype(np.uint8)]))
    else:
        _geotiff_with_mask(src / "ortho.tif", image, ~outside)
    seg = RuntimeSegmenter.load(onnx_model)
    out = tmp_path / "out"
    predict_folder(seg, src, out, save_overlay=True, save_confidence=True, areas_csv="areas.csv", progress=False)
    expected = seg.predict(image[..., :3]).labels
    labels = tifffile.imread(out / "ortho_labels.tif")
    assert (labels[outside] == 255).all() and np.array_equal(labels[~outside], expected[~outside])
    with tifffile.TiffFile(out / "ortho_labels.tif") as tif:
        assert tif.pages[0].tags["GDAL_NODATA"].value == "255"
        assert _tags(out / "ortho_labels.tif") == _tags(src / "ortho.tif")
    for kind in ("color", "overlay"):
        rgba = tifffile.imread(out / f"ortho_{kind}.tif")
        assert rgba.shape[2] == 4 and np.array_equal(rgba[..., 3] == 0, outside), kind
    np.testing.assert_array_equal(rgba[..., :3][~outside], seg.overlay(image[..., :3], expected)[~outside])
    confidence = tifffile.imread(out / "ortho_confidence.tif")
    assert (confidence[outside] == 0).all() and (confidence[~outside] > 0).all()
    row = (out / "areas.csv").read_text().splitlines()[1].split(",")
    shares = np.array([float(v) for v in row[1:]])
    counts = np.bincount(expected[~outside], minlength=seg.num_classes)[:seg.num_classes]
    np.testing.assert_allclose(shares, counts / (~outside).sum(), atol=1e-6)


def test_an_image_wholly_outside_its_footprint_has_no_class_shares(onnx_model, scene, tmp_path):
    _geotiff(tmp_path / "void.tif", np.zeros_like(scene), nodata="0")
    predict_folder(RuntimeSegmenter.load(onnx_model), tmp_path, tmp_path / "out", areas_csv="areas.csv", progress=False)
    row = (tmp_path / "out" / "areas.csv").read_text().splitlines()[1].split(",")
    assert row[0].endswith("void.tif") and set(row[1:]) == {""}  # not 0.0 shares: there is nothing to share


def test_gdal_masks_are_found_after_overviews_and_a_damaged_one_only_warns(scene, tmp_path):
    """GDAL writes the mask after the overviews when they were built first (gdaladdo, then a
    mask); a mask that cannot be decoded leaves the outputs unmarked, and the run goes on."""
    inside = np.ones(scene.shape[:2], bool)
    inside[:, :40] = False
    geo = [(33550, "d", 3, SCALE, False), (33922, "d", 6, TIEPOINT, False), (34735, "H", len(GEOKEYS), GEOKEYS, False)]
    with tifffile.TiffWriter(tmp_path / "late.tif") as tw:
        tw.write(scene, photometric="rgb", extratags=geo)
        tw.write(scene[::2, ::2], photometric="rgb", subfiletype=1)  # an overview
        tw.write(inside, photometric=4, subfiletype=4, compression="zlib")
    georef = read_georef(tmp_path / "late.tif")
    assert georef.mask and np.array_equal(outside_footprint(tmp_path / "late.tif", georef), ~inside)
    data = bytearray((tmp_path / "late.tif").read_bytes())
    with tifffile.TiffFile(tmp_path / "late.tif") as tif:
        start = tif.pages[2].dataoffsets[0]
    data[start:start + 8] = b"\xff" * 8  # not a Deflate stream any more
    (tmp_path / "damaged.tif").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="mask of .*damaged.tif could not be read"):
        assert not outside_footprint(tmp_path / "damaged.tif", read_georef(tmp_path / "damaged.tif")).any()
