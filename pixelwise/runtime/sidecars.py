"""Georeferencing held beside an image (world file, ESRI .prj, GDAL .aux.xml), carried to its outputs.

An aerial PNG or JPEG tile is usually placed by files beside it rather than by tags inside it;
each output of such an image (same pixel grid) gets the same files under its own name, arranged
so that GDAL places the output where it places the input. Pillow only (for the orientation).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pixelwise.data.io import open_image
from pixelwise.runtime.georef import TIFF_SUFFIXES

# A world file holds the pixel grid's affine transform, an ESRI .prj the coordinate system, and
# GDAL's <image>.aux.xml the coordinate system, transform and ground control points (a GeoTIFF
# may have them too). What GDAL 3.10 does, checked file by file:
# world files are looked up as <stem>.<first+last letter>w, <stem>.<ext>w (and .jpw for JPEG),
# then <stem>.wld, matching the name case-insensitively (BMP: only all-lower or all-upper case),
# skipping one that holds no usable transform; WEBP reads none. Where both place the image, PNG,
# GIF and BMP take the world file first, JPEG and TIFF the .aux.xml's GeoTransform.
AUX_KEPT = ("SRS", "GeoTransform", "GCPList")  # what describes the grid; band statistics and the rest do not
SIDECAR_MAX_BYTES = 64 << 20  # larger: not read (an .aux.xml that big is a histogram or a table), with a warning
WORLD_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff")  # formats GDAL reads them for
WORLD_FIRST = (".png", ".gif", ".bmp")  # the world file wins over the .aux.xml's GeoTransform
EXACT_CASE = (".bmp",)  # GDAL's BMP driver matches the world file's name only all-lower or all-upper


@dataclass(frozen=True)
class Sidecars:
    """The georeferencing files of one image, as bytes to write beside each of its outputs."""

    world: bytes | None = None
    prj: bytes | None = None
    aux: bytes | None = None  # a PAMDataset holding only AUX_KEPT elements

    def files_for(self, output: Path) -> dict[Path, bytes]:
        """The sidecar files of ``output`` (``a_labels.png`` -> ``a_labels.pgw``, ``a_labels.prj``,
        ``a_labels.png.aux.xml``) with their content."""
        content = dict(zip(sidecar_names(output), (self.world, self.prj, self.aux)))
        return {p: data for p, data in content.items() if data is not None}


def sidecar_names(output: Path) -> tuple[Path, Path, Path]:
    """Where an output's world file, .prj and .aux.xml are written."""
    return world_file_of(output), output.with_suffix(".prj"), aux_file_of(output)


def world_file_of(image: Path) -> Path:
    """GDAL's first world-file name for ``image``: the suffix's first and last letters and 'w'
    (``.png`` -> ``.pgw``, ``.tif`` -> ``.tfw``)."""
    ext = image.suffix[1:]
    return image.with_suffix(f".{ext[0]}{ext[-1]}w")


def aux_file_of(image: Path) -> Path:
    return image.with_name(image.name + ".aux.xml")


def _world_names(image: Path) -> list[str]:
    """The world-file names GDAL tries for ``image``, in its order (none for formats it reads none for)."""
    ext = image.suffix.lower()
    if ext not in WORLD_FILE_SUFFIXES:
        return []
    e = ext[1:]
    exts = [f"{e[0]}{e[-1]}w", f"{e}w", *(["jpw"] if e in ("jpg", "jpeg") else []), "wld"]
    return [f"{image.stem}.{x}" for x in exts]


def usable_world_file(data: bytes) -> bool:
    """GDAL's test: six numbers (blank lines skipped; text reads as 0), with a non-zero x term and y term."""
    lines = [ln.strip() for ln in data.decode("latin-1").splitlines() if ln.strip()]
    if len(lines) < 6:
        return False

    def num(text: str) -> float:
        try:
            return float(text.split()[0].replace(",", "."))
        except (ValueError, IndexError):
            return 0.0

    a, d, b, e = (num(v) for v in lines[:4])
    return (a != 0 or b != 0) and (e != 0 or d != 0)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # '{namespace}SRS' -> 'SRS': GDAL reads a namespaced .aux.xml too


def _kept_aux(path: Path, data: bytes) -> tuple[bytes | None, bool]:
    """The grid-describing part of a GDAL .aux.xml, and whether it holds a GeoTransform; a file
    that does not parse is left behind with a warning."""
    import warnings
    import xml.etree.ElementTree as ET

    try:
        data.decode("utf-8")
        if b"<!DOCTYPE" in data.upper():
            raise ValueError("it declares a DTD")  # which GDAL does not read (nor, then, entities or their expansion)
        root = ET.fromstring(data)
    except (ValueError, ET.ParseError) as exc:  # UnicodeDecodeError too: GDAL reads these files as UTF-8
        warnings.warn(f"{path} is not an .aux.xml GDAL reads ({exc}); its georeferencing is not carried to the "
                      "outputs.", UserWarning, stacklevel=5)
        return None, False
    kept = [el for el in root if isinstance(el.tag, str) and _local(el.tag) in AUX_KEPT]
    if _local(str(root.tag)) != "PAMDataset" or not kept:
        return None, False
    out = ET.Element("PAMDataset")
    out.text = "\n  "
    for el in kept:
        for sub in el.iter():
            if isinstance(sub.tag, str):
                sub.tag = _local(sub.tag)
        el.tail = "\n  "
        out.append(el)
    kept[-1].tail = "\n"
    return ET.tostring(out, encoding="utf-8") + b"\n", any(el.tag == "GeoTransform" for el in kept)


def _without(aux: bytes, tag: str) -> bytes | None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(aux)
    for el in root.findall(tag):
        root.remove(el)
    return ET.tostring(root, encoding="utf-8") + b"\n" if len(root) else None


class SidecarFinder:
    """Finds the sidecar files of images and outputs as GDAL does, one folder listing per folder
    (a run over thousands of tiles lists each folder once, not every name per image)."""

    def __init__(self) -> None:
        self._folders: dict[Path, dict[str, list[str]]] = {}

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._folders:
            names: dict[str, list[str]] = {}
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        if entry.is_file():
                            names.setdefault(entry.name.lower(), []).append(entry.name)
            except OSError:
                pass
            self._folders[folder] = names
        return self._folders[folder]

    def _existing(self, folder: Path, name: str, exact_case: bool = False) -> list[Path]:
        found = self._listing(folder).get(name.lower(), [])
        if exact_case:
            found = [n for n in found if n in (name.lower(), name.upper())]
        return [folder / n for n in sorted(found, key=lambda n: (n != name, n))]

    def world_files(self, image: Path) -> list[Path]:
        """Existing world files of ``image``, in GDAL's order."""
        exact = image.suffix.lower() in EXACT_CASE
        return [p for name in _world_names(image) for p in self._existing(image.parent, name, exact)]

    def files_of(self, image: Path) -> list[Path]:
        """Every existing file that GDAL or ESRI tools would read as ``image``'s georeferencing (for
        an output: its own, and any stale ones an earlier run left)."""
        folder = image.parent
        return [*self.world_files(image), *self._existing(folder, f"{image.stem}.prj"),
                *self._existing(folder, f"{image.name}.aux.xml")]

    def read(self, image: Path) -> Sidecars | None:
        """``image``'s georeferencing beside it, arranged so that GDAL places its outputs as it
        places the image, or None when it has none, or when pixelwise reads the image turned by an
        EXIF/TIFF orientation (the files describe the stored grid, no longer the outputs'). A file
        that cannot be opened gives None: reading its pixels reports why."""
        image = Path(image)
        files = self.files_of(image)
        if not files:
            return None
        from pixelwise.data.io import stored_upright

        try:
            with open_image(image) as im:
                if not stored_upright(im):
                    return None
        except Exception:  # noqa: BLE001 - reported by the pixel read that follows
            return None
        world = next((d for p in self.world_files(image) if (d := _read_small(p)) and usable_world_file(d)), None)
        prj_path = next((p for p in files if p.suffix.lower() == ".prj"), None)
        prj = _read_small(prj_path) if prj_path else None
        aux_path = next((p for p in files if p.name.lower().endswith(".aux.xml")), None)
        aux_data = _read_small(aux_path) if aux_path else None
        aux, aux_places = _kept_aux(aux_path, aux_data) if aux_path and aux_data else (None, False)
        if aux is not None and image.suffix.lower() in TIFF_SUFFIXES and b"<GCPList" in aux:
            aux = _without(aux, "SRS")  # GDAL gives a TIFF placed by GCPs no CRS of its own (a PNG would take it)
        if world is not None and aux is not None and aux_places:
            if image.suffix.lower() in WORLD_FIRST:  # the image is placed by its world file: so are the outputs
                aux = _without(aux, "GeoTransform")
            else:  # placed by the .aux.xml; PNG outputs would take a world file first
                world = None
        if world is None and aux is None and prj is None:
            return None
        return Sidecars(world, prj, aux)


def _read_small(path: Path) -> bytes | None:
    import warnings

    try:
        if path.stat().st_size > SIDECAR_MAX_BYTES:
            warnings.warn(f"{path} is over {SIDECAR_MAX_BYTES >> 20} MB and is not read; its georeferencing is not "
                          "carried to the outputs.", UserWarning, stacklevel=4)
            return None
        return path.read_bytes()
    except OSError:
        return None


def read_sidecars(path: str | Path) -> Sidecars | None:
    """``path``'s georeferencing beside it (``SidecarFinder.read`` for one image)."""
    return SidecarFinder().read(Path(path))


def write_sidecars(output: Path, sidecars: Sidecars | None, finder: SidecarFinder) -> list[Path]:
    """Write ``output``'s sidecar files (atomically), and remove the ones an earlier run left that
    this input no longer has: a stale world file would place the new output wrongly. The caller
    has refused the run if any of them is an input's (``refuse_overwriting_inputs``)."""
    from pixelwise.data.io import atomic_write_bytes

    content = sidecars.files_for(output) if sidecars else {}
    for stale in finder.files_of(output):
        if stale not in content:
            stale.unlink(missing_ok=True)
    for p, data in content.items():
        atomic_write_bytes(p, data)
    return list(content)
