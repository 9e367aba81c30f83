"""The outputs of an aerial GeoTIFF are GeoTIFFs on the same grid: checked with tifffile, an
independent TIFF reader, on real files written and predicted on disk."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, TiffTags
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from pixelwise.runtime import RuntimeSegmenter
from pixelwise.runtime.batch import output_stems, predict_folder
import xml.etree.ElementTree as ET

from pixelwise.errors import DatasetError
from pixelwise.runtime.georef import encode_geotiff, outside_footprint, read_georef, read_sidecars

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


WORLD = b"0.25\n0\n0\n-0.25\n2600000.125\n1199999.875\n"  # 0.25 m pixels, upper-left pixel's centre
SRS = 'PROJCS["CH1903+ / LV95",GEOGCS["CH1903+"],AUTHORITY["EPSG","2056"]]'
AUX = f"""<PAMDataset>
  <SRS dataAxisToSRSAxisMapping="1,2">{SRS}</SRS>
  <Metadata domain="IMAGE_STRUCTURE"><MDI key="INTERLEAVE">PIXEL</MDI></Metadata>
  <GeoTransform>  2.6e+06,  2.5e-01,  0.0e+00,  1.2e+06,  0.0e+00, -2.5e-01</GeoTransform>
  <PAMRasterBand band="1"><Metadata><MDI key="STATISTICS_MEAN">127.2</MDI></Metadata></PAMRasterBand>
</PAMDataset>
"""


def test_world_files_prj_and_aux_xml_go_beside_each_output(onnx_model, scene, tmp_path):
    """Aerial PNG/JPEG tiles carry their georeferencing beside them (as GDAL writes and reads it):
    each output, on the input's pixel grid, gets the same files under its own name."""
    src = tmp_path / "tiles"
    src.mkdir()
    Image.fromarray(scene).save(src / "a.png")
    (src / "a.PGW").write_bytes(WORLD)  # GDAL looks for the upper-case name too
    (src / "a.prj").write_bytes(SRS.encode())
    Image.fromarray(scene).save(src / "b.jpg")
    (src / "b.jpg.aux.xml").write_text(AUX)
    Image.fromarray(scene).save(src / "plain.png")
    sources = {p: p.read_bytes() for p in src.iterdir()}
    seg = RuntimeSegmenter.load(onnx_model)
    out = tmp_path / "out"
    written = predict_folder(seg, src, out, save_overlay=True, progress=False)
    names = {p.name for p in written}
    assert {"a_labels.pgw", "a_labels.prj", "a_overlay.pgw", "a_color.prj"} <= names
    assert {"b_labels.png.aux.xml", "b_overlay.png.aux.xml"} <= names
    assert not {n for n in names if n.startswith("plain") and not n.endswith(".png")}
    assert (out / "a_color.pgw").read_bytes() == WORLD and (out / "a_labels.prj").read_bytes() == SRS.encode()
    assert not (out / "a_labels.png.aux.xml").exists() and not (out / "b_labels.pgw").exists()
    aux = ET.parse(out / "b_labels.png.aux.xml").getroot()
    # the grid's description is kept; the input's band statistics would be wrong for a label map
    assert [el.tag for el in aux] == ["SRS", "GeoTransform"]
    assert aux.find("SRS").text == SRS and aux.find("SRS").get("dataAxisToSRSAxisMapping") == "1,2"
    assert aux.find("GeoTransform").text == ET.fromstring(AUX).find("GeoTransform").text
    assert {p: p.read_bytes() for p in src.iterdir()} == sources  # the inputs and their sidecars untouched
    # The input lost its world file: the earlier run's world files no longer describe the outputs.
    (src / "a.PGW").unlink()
    again = predict_folder(seg, src, out, progress=False)
    assert not (out / "a_labels.pgw").exists() and not (out / "a_color.pgw").exists()
    assert (out / "a_labels.prj").exists() and out / "a_labels.prj" in again


GT_AUX = "<PAMDataset>\n  <GeoTransform>1000, 3, 0, 2000, 0, -3</GeoTransform>\n</PAMDataset>\n"


def test_the_outputs_are_placed_by_what_places_the_input(scene, tmp_path):
    """With a world file and an .aux.xml GeoTransform both present, GDAL places a PNG by the
    world file and a JPEG by the .aux.xml, while PNG outputs would take a world file first: only
    the source that places the input travels."""
    for name, world in (("p.png", "p.pgw"), ("j.jpg", "j.jgw")):
        Image.fromarray(scene).save(tmp_path / name)
        (tmp_path / world).write_bytes(WORLD)
        (tmp_path / f"{name}.aux.xml").write_text(GT_AUX.replace("</PAMDataset>", f"  <SRS>{SRS}</SRS>\n</PAMDataset>"))
    png, jpg = read_sidecars(tmp_path / "p.png"), read_sidecars(tmp_path / "j.jpg")
    assert png.world == WORLD and [el.tag for el in ET.fromstring(png.aux)] == ["SRS"]
    assert jpg.world is None and [el.tag for el in ET.fromstring(jpg.aux)] == ["GeoTransform", "SRS"]


def test_world_files_are_found_as_gdal_finds_them(scene, tmp_path):
    def image(name: str) -> Path:
        Image.fromarray(scene).save(tmp_path / name)
        return tmp_path / name

    (tmp_path / "mixed.Jgw").write_bytes(WORLD)  # GDAL matches the name in any case
    assert read_sidecars(image("mixed.jpg")).world == WORLD
    (tmp_path / "jpw.jpw").write_bytes(WORLD)  # the JPEG driver's extra name
    assert read_sidecars(image("jpw.jpg")).world == WORLD
    (tmp_path / "empty.pgw").write_bytes(b"")  # unusable: GDAL goes on to the next name
    (tmp_path / "empty.wld").write_bytes(WORLD)
    assert read_sidecars(image("empty.png")).world == WORLD
    (tmp_path / "w.wpw").write_bytes(WORLD)  # GDAL reads no world file for WEBP
    assert read_sidecars(image("w.webp")) is None
    (tmp_path / "ns.png.aux.xml").write_text(AUX.replace("<PAMDataset>", '<PAMDataset xmlns="urn:x">'))
    aux = ET.fromstring(read_sidecars(image("ns.png")).aux)
    assert aux.tag == "PAMDataset" and [el.tag for el in aux] == ["SRS", "GeoTransform"]


def test_an_aux_xml_gdal_cannot_read_is_not_carried(scene, tmp_path):
    for name, text in (("dtd", f'<!DOCTYPE x [<!ENTITY s "{SRS}">]><PAMDataset><SRS>&s;</SRS></PAMDataset>'),
                       ("latin", f'<?xml version="1.0" encoding="ISO-8859-1"?><PAMDataset><SRS>{SRS}é</SRS></PAMDataset>')):
        Image.fromarray(scene).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.png.aux.xml").write_bytes(text.encode("latin-1"))
        with pytest.warns(UserWarning, match="not an .aux.xml GDAL reads"):
            assert read_sidecars(tmp_path / f"{name}.png") is None


def test_a_tiff_placed_without_geokeys_keeps_its_tags(scene, tmp_path):
    ifd = ImageFileDirectory_v2()
    for tag, value in ((33550, SCALE), (33922, TIEPOINT)):
        ifd[tag] = value
        ifd.tagtype[tag] = TiffTags.DOUBLE
    Image.fromarray(scene).save(tmp_path / "n.tif", tiffinfo=ifd)
    assert set(read_georef(tmp_path / "n.tif").tags) == {33550, 33922}


def test_sidecars_are_carried_only_for_images_read_as_stored(scene, tmp_path):
    photo = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: pixelwise predicts the turned image, the world file describes the stored one
    Image.fromarray(scene).save(photo, exif=exif)
    (tmp_path / "photo.jgw").write_bytes(WORLD)
    assert read_sidecars(photo) is None
    Image.fromarray(scene).save(tmp_path / "flat.jpg")
    (tmp_path / "flat.wld").write_bytes(WORLD)  # GDAL's third world-file name
    assert read_sidecars(tmp_path / "flat.jpg").world == WORLD
    Image.fromarray(scene).save(tmp_path / "broken.png")
    (tmp_path / "broken.png.aux.xml").write_text("<PAMDataset><SRS>")
    with pytest.warns(UserWarning, match="broken.png.aux.xml is not an .aux.xml GDAL reads"):
        assert read_sidecars(tmp_path / "broken.png") is None
    (tmp_path / "stats.png.aux.xml").write_text('<PAMDataset><PAMRasterBand band="1"/></PAMDataset>')
    Image.fromarray(scene).save(tmp_path / "stats.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_sidecars(tmp_path / "stats.png") is None  # statistics only: no georeferencing


def test_an_inputs_sidecar_is_never_written_over(onnx_model, scene, tmp_path):
    """Into the input folder, a.png's outputs replace a_labels.prj; when that is another input's
    own .prj (the photo a_labels.jpg), the run is refused before anything is written."""
    Image.fromarray(scene).save(tmp_path / "a.png")
    Image.fromarray(scene).save(tmp_path / "a_labels.jpg")
    (tmp_path / "a_labels.prj").write_bytes(SRS.encode())
    seg = RuntimeSegmenter.load(onnx_model)
    with pytest.raises(DatasetError, match="overwrite the input file .*a_labels.prj"):
        predict_folder(seg, tmp_path, tmp_path, progress=False)
    # The photo stored sideways: its .prj is not carried, and still not removed as a stale one.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(scene).save(tmp_path / "a_labels.jpg", exif=exif)
    with pytest.raises(DatasetError, match="overwrite the input file .*a_labels.prj"):
        predict_folder(seg, tmp_path, tmp_path, progress=False)
    # A torchrun rank whose shard is a.png alone refuses too (it checks the whole run's inputs).
    files = sorted(tmp_path.glob("a*.*g"))
    with pytest.raises(DatasetError, match="overwrite the input file .*a_labels.prj"):
        predict_folder(seg, tmp_path, tmp_path, progress=False, files=files[:1], names_by_file=output_stems(files))
    assert (tmp_path / "a_labels.prj").read_bytes() == SRS.encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_labels.jpg", "a_labels.prj"]


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
