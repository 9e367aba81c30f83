"""Telling a checkpoint from other files before PyTorch is imported.

A runtime-only install (``pixelwise[runtime]``, no torch) answered "'predict' needs torch" to a
typo'd ``--model`` (a sidecar ``.json``, a folder, a YAML): the file is checked here first, so the
user hears what the file is, and only a real checkpoint asks for torch.
"""
from __future__ import annotations

from pathlib import Path

from pixelwise.errors import CheckpointError

# torch.save writes a zip archive (PyTorch >= 1.6) or, in its legacy format, a bare pickle.
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")
_PASS_A_MODEL = "pass a .pt checkpoint written by 'pixelwise train', or an .onnx / OpenVINO .xml export"


def is_torchscript_archive(path: Path) -> bool:
    """A TorchScript file saved as .pt: a zip whose archive folder holds ``constants.pkl`` beside its
    compiled ``code/`` (torch.save's holds ``data.pkl`` and ``data/`` only, whatever the archive is
    named). torch.load would hand it to torch.jit.load, with two warnings, before the error."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.count("/") == 1 and n.endswith("/constants.pkl") for n in z.namelist()[:4096])
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def check_checkpoint_file(path: str | Path) -> Path:
    """Refuse, in one line, a path that cannot be a pixelwise checkpoint; return it as a Path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise CheckpointError(f"Checkpoint not found: {path}.", path=path,
                              fix="pass the path of a .pt file written by 'pixelwise train'")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a model file.", path=path,
                              fix=f"{_PASS_A_MODEL} (e.g. {path / 'best.pt'})")
    if suffix in (".torchscript", ".ts", ".engine") or is_torchscript_archive(path):
        raise CheckpointError(f"{path} is a {'TensorRT engine' if suffix == '.engine' else 'TorchScript export'}"
                              ", which pixelwise runs nowhere (it is for your own C++/Python code).", path=path,
                              fix="pass the .pt it was exported from, or an .onnx / OpenVINO .xml export "
                                  "(predict, val and serve read those)")
    if suffix in (".onnx", ".xml", ".bin"):
        raise CheckpointError(f"{path} is an exported model, not a training checkpoint.", path=path,
                              fix="pass the .pt it was exported from (predict, val and serve take exports too)")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head.startswith(_CHECKPOINT_MAGIC) and suffix in (".pt", ".pth", ".ckpt"):
        raise CheckpointError(f"Checkpoint {path} cannot be read: it is {'empty' if not head else 'no PyTorch file'}.",
                              path=path, fix="use another checkpoint (e.g. last.pt or best.pt)")
    if not head.startswith(_CHECKPOINT_MAGIC):
        what = f"its suffix is '{path.suffix}'" if path.suffix else "it has no suffix"
        raise CheckpointError(f"{path} is not a model pixelwise reads ({what}, and it is no PyTorch file).",
                              path=path, fix=_PASS_A_MODEL)
    return path
