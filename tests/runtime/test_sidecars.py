"""Georeferencing held beside an image (world file, .prj, .aux.xml) carried to its outputs (runtime/sidecars.py)."""
from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from pixelwise.errors import DatasetError
from pixelwise.runtime import RuntimeSegmenter
from pixelwise.runtime.batch import output_stems, predict_folder
from pixelwise.runtime.sidecars import read_sidecars

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
