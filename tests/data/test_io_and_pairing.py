import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.data.dataset import SegmentationDataset
from pixelwise.data.io import displayed_size, open_image, read_image, read_label
from pixelwise.data.pairing import paired_samples
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import DatasetError, ImageReadError, LabelError


def _first(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


def test_missing_image_folder(tiny_dataset: Path):
    shutil.rmtree(tiny_dataset.parent / "train" / "images")
    with pytest.raises(DatasetError, match="not found") as err:
        SegmentationDataset(DatasetSpec.load(tiny_dataset), "train")
    assert "train/images" in str(err.value)


def test_empty_image_folder(tiny_dataset: Path):
    for p in (tiny_dataset.parent / "val" / "images").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="empty"):
        SegmentationDataset(DatasetSpec.load(tiny_dataset), "val")


def test_images_without_labels_and_labels_without_images(tiny_dataset: Path):
    root = tiny_dataset.parent / "train"
    lab = _first(root / "labels")
    lab.rename(root / "labels" / "orphan_label.png")
    with pytest.raises(DatasetError) as err:
        paired_samples(DatasetSpec.load(tiny_dataset).split("train"))
    msg = str(err.value)
    assert "1 image(s) without a label" in msg and lab.stem in msg
    assert "1 label(s) without an image" in msg and "orphan_label.png" in msg


def test_suffix_pairing_drive_style(tmp_path: Path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "21_training.tif")
    Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "labels" / "21_manual1.gif")
    spec = DatasetSpec.from_dict({"train": {"images": "images", "labels": "labels",
                                            "image_suffix": "_training", "label_suffix": "_manual1"},
                                  "names": ["bg", "vessel"]}, base=tmp_path)
    ds = SegmentationDataset(spec, "train")
    image, label = ds.load(0)
    assert image.shape == (8, 8, 3) and label.max() == 1


def test_truncated_image_names_the_file(tiny_dataset: Path):
    img = _first(tiny_dataset.parent / "train" / "images")
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=img.name):
        read_image(img)


def test_corrupt_image_names_the_file(tmp_path: Path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="bad.jpg") as err:
        read_image(bad)
    assert "Fix:" in str(err.value)


def test_a_file_in_a_variant_pillow_cannot_decode_is_an_image_error(tmp_path: Path):
    """Pillow's DDS plugin raises NotImplementedError for pixel formats it lacks: a traceback."""
    import struct

    dds = tmp_path / "texture.dds"
    dds.write_bytes(b"DDS " + struct.pack("<7I", 124, 0x1007, 48, 64, 0, 0, 0) + b"\0" * 44
                    + struct.pack("<2I", 32, 0) + b"\0" * 104)
    with pytest.raises(ImageReadError, match="texture.dds") as err:
        read_image(dds)
    assert "Fix:" in str(err.value)


def test_planar_16_bit_colour_is_refused_not_misread(tmp_path: Path):
    """Pillow opens a TIFF with 16-bit bands stored apart as 8-bit RGB and decodes wrong pixels
    (off by up to 251 from the data's top 8 bits) without an error; the README says it is refused."""
    import tifffile

    rgb = np.random.default_rng(0).integers(0, 65536, (3, 24, 32), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "planar16.tif", rgb, photometric="rgb", planarconfig="separate")
    with pytest.raises(ImageReadError, match="planar16.tif.*planar 16-bit.*gdal_translate"):
        read_image(tmp_path / "planar16.tif")
    from pixelwise.runtime.imageio import load_input

    with Image.open(tmp_path / "planar16.tif") as opened:  # predict(Image.open(...)) is refused too
        with pytest.raises(ImageReadError, match="planar 16-bit"):
            load_input(opened)
    small = (rgb >> 8).astype(np.uint8)
    tifffile.imwrite(tmp_path / "planar16z.tif", rgb, photometric="rgb", planarconfig="separate",
                     compression="zlib")  # compressed: libtiff decodes it right, so it is read
    np.testing.assert_array_equal(read_image(tmp_path / "planar16z.tif"), small.transpose(1, 2, 0))
    # planar 8-bit colour is decoded right, and still read
    tifffile.imwrite(tmp_path / "planar8.tif", small, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "planar8.tif"), small.transpose(1, 2, 0))


def test_signed_8_bit_tiff_is_refused_not_misread(tmp_path: Path):
    """Pillow reads 8-bit signed samples as unsigned grey (-128 as 128) without an error."""
    import tifffile

    tifffile.imwrite(tmp_path / "int8.tif", np.arange(-128, 128, dtype=np.int8).reshape(16, 16))
    with pytest.raises(ImageReadError, match="int8.tif.*8-bit signed.*gdal_translate -ot Byte"):
        read_image(tmp_path / "int8.tif")


@pytest.mark.parametrize("dtype, inside_range, nodata", [(np.uint16, (100, 4000), 65535), (np.uint16, (100, 4000), 9000),
                                                         (np.float32, (-5.0, 30.0), -9999.0),
                                                         (np.float32, (-5.0, 30.0), 1e6),
                                                         (np.float32, (-5.0, 30.0), -3.4028234663852886e38)])
def test_the_stretch_of_deep_grey_data_leaves_its_nodata_value_out(tmp_path: Path, dtype, inside_range, nodata):
    """An orthomosaic's DEM or 16-bit band outside its data holds GDAL's nodata value (tag 42113):
    stretched with the rest, -9999 or 65535 squashed the data to almost one grey. The data read
    is the same whatever value marks the outside, and the outside is 0."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    rng = np.random.default_rng(0)
    data = rng.uniform(*inside_range, (40, 60)).astype(dtype)
    outside = np.zeros(data.shape, bool)
    outside[:, :20] = True
    reads = []
    for value in (nodata, None):  # with the tag, and the same data with its outside at the data's own low end
        arr = data.copy()
        arr[outside] = nodata if value is not None else data[~outside].min()
        ifd = ImageFileDirectory_v2()
        if value is not None:
            ifd[42113] = str(value)
            ifd.tagtype[42113] = 2  # ASCII
        path = tmp_path / f"dem_{value}.tif"
        Image.fromarray(arr).save(path, tiffinfo=ifd)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # GDAL's float32 minimum overflowed the stretch's arithmetic, with a warning
            reads.append(read_image(path))
    with_nodata, without = reads
    assert (with_nodata[outside] == 0).all()
    np.testing.assert_array_equal(with_nodata[~outside], without[~outside])


def test_rgb_label_is_refused(tmp_path: Path):
    p = tmp_path / "rgb.png"
    arr = np.zeros((4, 4, 3), np.uint8)
    arr[0, 0] = (128, 64, 128)
    Image.fromarray(arr).save(p)
    with pytest.raises(LabelError, match="RGB colour image"):
        read_label(p)


def test_grey_saved_as_rgb_and_palette_png_are_read_as_ids(tmp_path: Path):
    ids = np.array([[0, 1], [2, 255]], np.uint8)
    Image.fromarray(np.repeat(ids[..., None], 3, 2)).save(tmp_path / "g.png")
    assert np.array_equal(read_label(tmp_path / "g.png"), ids)
    pal = Image.fromarray(ids, mode="L").convert("P")
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    pal.save(tmp_path / "p.png")
    assert np.array_equal(read_label(tmp_path / "p.png"), ids)


def test_label_size_mismatch(tiny_dataset: Path):
    lab = _first(tiny_dataset.parent / "train" / "labels")
    Image.open(lab).resize((50, 40), Image.NEAREST).save(lab)
    ds = SegmentationDataset(DatasetSpec.load(tiny_dataset), "train")
    with pytest.raises(LabelError, match="50x40") as err:
        ds[0]
    assert lab.name in str(err.value)


def test_unknown_label_values(tiny_dataset: Path):
    lab = _first(tiny_dataset.parent / "train" / "labels")
    arr = np.array(Image.open(lab))
    arr[0, :3] = 42
    Image.fromarray(arr).save(lab)
    ds = SegmentationDataset(DatasetSpec.load(tiny_dataset), "train")
    with pytest.raises(LabelError, match="42") as err:
        ds[0]
    assert lab.name in str(err.value) and "ignore value 11" in str(err.value)


def test_voc_palette_with_grey_class_keeps_indices(tmp_path: Path):
    """VOC draws class 7 (car) in grey (128,128,128): the index, not the grey level, is the class."""
    def voc_color(i: int) -> list[int]:
        r = g = b = 0
        for j in range(8):
            r |= ((i >> 0) & 1) << (7 - j)
            g |= ((i >> 1) & 1) << (7 - j)
            b |= ((i >> 2) & 1) << (7 - j)
            i >>= 3
        return [r, g, b]

    assert voc_color(7) == [128, 128, 128]
    ids = np.array([[0, 7], [7, 0]], np.uint8)
    im = Image.fromarray(ids, mode="L").convert("P")
    im.putpalette([v for i in range(256) for v in voc_color(i)])
    im.save(tmp_path / "voc.png")
    assert np.array_equal(read_label(tmp_path / "voc.png"), ids)


def test_other_formats_point_to_conversion(tiny_dataset: Path):
    import yaml

    raw = yaml.safe_load(tiny_dataset.read_text())
    raw["format"] = "coco"
    tiny_dataset.write_text(yaml.safe_dump(raw))
    with pytest.raises(DatasetError, match="pixelwise data convert"):
        SegmentationDataset(DatasetSpec.load(tiny_dataset), "train")


def _sideways_photo(path: Path) -> None:
    """A 40x20 JPEG stored sideways (left half red, right half blue) with EXIF orientation 6:
    viewers turn it 90 degrees clockwise, to 20 wide x 40 high, red on top."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)


def test_photos_with_an_exif_orientation_are_read_as_displayed(tmp_path: Path):
    """Phone photos are stored sideways with an EXIF orientation; annotation tools label them as
    displayed. They were read as stored, so predictions came out sideways."""
    from pixelwise.runtime.imageio import decode_image

    photo = tmp_path / "phone.jpg"
    _sideways_photo(photo)
    for image in (read_image(photo), decode_image(photo.read_bytes(), "phone.jpg")):
        assert image.shape == (40, 20, 3)
        assert image[:20, :, 0].mean() > 200 and image[:20, :, 2].mean() < 50   # red on top
        assert image[20:, :, 2].mean() > 200 and image[20:, :, 0].mean() < 50   # blue below
    assert read_image(photo, as_displayed=False).shape == (20, 40, 3)  # colour masks: pixels as stored
    png = tmp_path / "phone.png"  # PNG keeps EXIF in an eXIf chunk, read from the header
    Image.open(photo).save(png, exif=Image.open(photo).getexif().tobytes())
    assert read_image(png).shape == (40, 20, 3)
    with Image.open(png) as im:
        assert displayed_size(im) == (40, 20)
    from PIL import PngImagePlugin  # ImageMagick keeps EXIF in a text chunk instead

    info = PngImagePlugin.PngInfo()
    exif = Image.open(photo).getexif().tobytes()
    info.add_text("Raw profile type exif", f"\nexif\n{len(exif):8d}\n{exif.hex()}")
    Image.open(photo).save(tmp_path / "magick.png", pnginfo=info)
    assert read_image(tmp_path / "magick.png").shape == (40, 20, 3)


def test_a_label_drawn_on_the_displayed_photo_pairs_and_one_at_the_stored_size_is_explained(tiny_dataset: Path):
    from pixelwise.data.check import check_dataset

    root = tiny_dataset.parent
    photo = _first(root / "train" / "images")
    _sideways_photo(photo)
    lab = root / "train" / "labels" / f"{photo.stem}.png"
    Image.fromarray(np.zeros((40, 20), np.uint8)).save(lab)  # drawn on the displayed photo
    spec = DatasetSpec.load(tiny_dataset)
    ds = SegmentationDataset(spec, "train")
    index = [s.image for s in ds.samples].index(photo)
    image, label = ds.load(index)
    assert image.shape[:2] == label.shape == (40, 20)
    assert not [p for p in check_dataset(spec).errors if p.file in (photo, lab)]
    Image.fromarray(np.zeros((20, 40), np.uint8)).save(lab)  # at the stored size: turned
    with pytest.raises(LabelError, match="EXIF orientation turns it"):
        ds.load(index)
    assert [p.kind for p in check_dataset(spec).errors if p.file == lab] == ["size"]
    from pixelwise.data.view import view_dataset  # the grid of samples says so too, not a numpy broadcast error

    with pytest.raises(LabelError, match="EXIF orientation turns it"):
        view_dataset(tiny_dataset, tiny_dataset.parent / "grid.png", count=100, split="train")


def _open_error(path: Path) -> BaseException | None:
    try:
        Image.open(path).close()
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return exc
    return None


def test_large_images_open_without_lifting_pillows_limit_for_the_process(tmp_path: Path, monkeypatch):
    """Huge aerial tiles must open, but importing the runtime used to set Image.MAX_IMAGE_PIXELS =
    None for the whole process, switching off Pillow's decompression-bomb guard in the user's own code."""
    import subprocess
    import sys

    code = ("from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import pixelwise, pixelwise.runtime.imageio, "
            "pixelwise.data.check, pixelwise.serve.app; print(before is not None and Image.MAX_IMAGE_PIXELS == before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr[-2000:]

    from pixelwise.runtime.imageio import decode_image, read_image as runtime_read_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses above twice this: 100x100 stands in for a huge tile
    path = tmp_path / "big.png"
    Image.fromarray(np.full((100, 120), 7, np.uint8)).save(path)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    assert read_image(path).shape == (100, 120, 3) and runtime_read_image(path).shape == (100, 120, 3)
    tif = tmp_path / "big.tif"  # Pillow checks a compressed TIFF again when it loads the pixels
    Image.fromarray(np.full((100, 120, 3), 9, np.uint8)).save(tif, compression="tiff_lzw")
    assert (read_image(tif) == 9).all() and (decode_image(tif.read_bytes()) == 9).all()
    webp = tmp_path / "big.webp"  # Pillow's WebP reader calls the guard with its own keyword
    Image.fromarray(np.full((100, 120, 3), 9, np.uint8)).save(webp, lossless=True)
    assert (read_image(webp) == 9).all() and (decode_image(webp.read_bytes()) == 9).all()
    import threading

    other: list[BaseException | None] = []
    with open_image(path):  # inside pixelwise's block, another thread keeps Pillow's guard
        t = threading.Thread(target=lambda: other.append(_open_error(path)))
        t.start()
        t.join()
    assert isinstance(other[0], Image.DecompressionBombError)
    assert (read_label(path) == 7).all()
    with open_image(path) as im:
        assert displayed_size(im) == (100, 120)
    assert decode_image(path.read_bytes()).shape == (100, 120, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after each read
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)


def test_deep_images_follow_one_rule_and_unreadable_tiffs_say_what_they_are(tmp_path: Path):
    """Aerial, medical and industrial files: 12-bit colour in 16-bit files came out black without
    a word; float or signed data with negatives or a NaN came out all white, all black or clipped;
    a valid float-colour TIFF was called corrupt."""
    import warnings

    import cv2

    from pixelwise.runtime.imageio import decode_image

    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "full16.png"), (u8.astype(np.uint16) * 257)[..., ::-1])  # 48-bit PNG, full range
    cv2.imwrite(str(tmp_path / "twelve.png"), (u8.astype(np.uint16) * 16)[..., ::-1])  # 12-bit data in 16 bits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # full-range 16-bit colour: its top 8 bits, silently
        assert np.array_equal(read_image(tmp_path / "full16.png"), u8)
        Image.fromarray(u8).convert("RGB").save(tmp_path / "plain.bmp")
        read_image(tmp_path / "plain.bmp")
    with pytest.warns(UserWarning, match=r"twelve\.png holds 16-bit colour.*at most 12 of the 16 bits.*almost black"):
        assert read_image(tmp_path / "twelve.png").max() <= 15
    with pytest.warns(UserWarning, match="upload.png holds 16-bit colour"):
        decode_image((tmp_path / "twelve.png").read_bytes(), "upload.png")
    grey = rng.integers(0, 4096, (20, 30)).astype(np.uint16)  # single-channel: stretched by its maximum, as before
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    expected = (grey.astype(np.float32) / grey.max() * 255.0).clip(0, 255).astype(np.uint8)
    assert np.array_equal(read_image(tmp_path / "grey16.png")[..., 0], expected)
    Image.fromarray(grey.astype(np.float32)).save(tmp_path / "grey_float.tif")  # float: the same numbers
    assert np.array_equal(read_image(tmp_path / "grey_float.tif")[..., 0], expected)
    ramp = np.linspace(-3, -1, 600, dtype=np.float32).reshape(20, 30)  # all negative (a DEM, HU values)
    ramp[0, 0] = np.nan
    Image.fromarray(ramp).save(tmp_path / "negative.tif")
    out = read_image(tmp_path / "negative.tif")[..., 0]
    assert out[0, 0] == 0 and out[0, 1] == 0 and out[-1, -1] == 255 and (np.diff(out.ravel()[1:].astype(int)) >= 0).all()
    signed = np.linspace(-1, 1, 600, dtype=np.float32).reshape(20, 30)  # NDVI-like: the negative half is kept
    Image.fromarray(signed).save(tmp_path / "ndvi.tif")
    assert abs(float(read_image(tmp_path / "ndvi.tif").mean()) - 127.5) < 2
    lzw = tmp_path / "lzw.tif"  # a cut download is damaged, not an unsupported layout
    Image.fromarray(u8).save(lzw, compression="tiff_lzw")
    (tmp_path / "cut.tif").write_bytes(lzw.read_bytes()[:-200])
    with pytest.raises(ImageReadError, match=r"cut\.tif: a TIFF cut short.*Fix: re-export or remove"):
        read_image(tmp_path / "cut.tif")
    with pytest.raises(ImageReadError, match=r"a TIFF cut short.*Fix: send the whole file"):
        decode_image((tmp_path / "cut.tif").read_bytes(), "cut.tif")
    cv2.imwrite(str(tmp_path / "float_rgb.tif"), rng.random((20, 30, 3)).astype(np.float32))
    for reader in (lambda: read_image(tmp_path / "float_rgb.tif"),
                   lambda: decode_image((tmp_path / "float_rgb.tif").read_bytes(), "float_rgb.tif")):
        with pytest.raises(ImageReadError, match=r"float_rgb\.tif: a TIFF whose sample format.*Fix: convert it to 8-bit"):
            reader()


def test_an_atomic_write_that_fails_names_the_destination_not_its_temp_file(tmp_path: Path):
    """A refused write said 'Permission denied: .a_labels.png.qvi90pcw.tmp' (mkstemp's own name)."""
    from pixelwise.data.io import atomic_write_bytes

    dest = tmp_path / ("a" * 245 + ".png")  # a legal name whose temp file's name is too long
    with pytest.raises(OSError) as err:
        atomic_write_bytes(dest, b"x")
    assert err.value.filename == str(dest) and not list(tmp_path.iterdir())
