import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.engine.trainer import train
from pixelwise.errors import CheckpointError, ResumeError

TINY = dict(batch_size=2, augment={"crop": (64, 96), "scale_range": (0.75, 1.25)}, workers=0,
            progress=False, model={"freeze_stages": 1, "pretrained": None})


def test_run_folder_has_everything(tiny_run):
    d = tiny_run.run_dir
    for name in ("config.yaml", "results.csv", "results.png", "best.pt", "last.pt", "class_counts.json"):
        assert (d / name).exists(), name
    rows = list(csv.DictReader(open(d / "results.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(r["val_mIoU"] for r in rows)
    last = load_checkpoint(d / "last.pt")
    assert last["finished"] and last["iteration"] == tiny_run.iterations == 6
    assert last["config"]["epochs"] == 2
    best = load_checkpoint(d / "best.pt")
    assert "optimizer" not in best and best["model_spec"]["arch"] == "fpn_lite"  # the default


def test_config_reproduces_the_run(tiny_run):
    from pixelwise.config import TrainConfig

    cfg = TrainConfig.load(tiny_run.run_dir / "config.yaml")
    assert cfg.batch_size == 2 and cfg.augment.crop == (64, 96) and cfg.model.freeze_stages == 1


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def test_resume_continues_exactly(tiny_dataset: Path, tmp_path: Path):
    """Stopped mid-epoch and resumed == never stopped (same weights, bit for bit)."""
    full = train(tiny_dataset, epochs=2, project=str(tmp_path), name="full", seed=3, **TINY)
    part = train(tiny_dataset, epochs=2, project=str(tmp_path), name="part", seed=3, stop_after=4, **TINY)
    assert part.iterations == 4  # epoch 2 (3 iterations each) was interrupted after its first batch
    resumed = train(resume=part.run_dir, progress=False)
    assert resumed.iterations == full.iterations == 6
    a, b = _weights(full.last), _weights(resumed.last)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader(open(resumed.run_dir / "results.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]


def test_resume_with_nothing_to_resume(tmp_path: Path):
    with pytest.raises(ResumeError, match="Nothing to resume"):
        train(resume=tmp_path / "no_run")


def test_resume_of_a_finished_run_is_refused(tiny_run):
    with pytest.raises(ResumeError, match="already finished"):
        train(resume=tiny_run.run_dir)


def test_checkpoint_for_another_model_or_class_count(tiny_run, tmp_path: Path):
    from pixelwise.engine.checkpoint import load_model_weights
    from pixelwise.models import create_model

    ckpt = load_checkpoint(tiny_run.best)
    with pytest.raises(CheckpointError, match="num_classes=11"):
        load_model_weights(create_model("fpn_lite", "efficientnet_lite0", 5), ckpt, tiny_run.best)
    with pytest.raises(CheckpointError, match="arch='fpn_lite'"):
        load_model_weights(create_model("unet", "efficientnet_lite0", 11), ckpt, tiny_run.best)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(junk)


def test_sigkill_mid_epoch_then_resume(tiny_dataset: Path, tmp_path: Path):
    """A real training process killed with SIGKILL leaves a loadable last.pt and resumes."""
    script = (
        "import sys; from pixelwise.engine.trainer import train; "
        f"train({str(tiny_dataset)!r}, epochs=40, batch_size=2, project={str(tmp_path)!r}, name='k', "
        "augment={'crop': (64, 96)}, workers=0, progress=False, checkpoint_interval=0, "
        "model={'freeze_stages': 1, 'pretrained': None}, val_interval=100)"
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    last = tmp_path / "k" / "last.pt"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if last.exists():
                try:
                    state = load_checkpoint(last)
                except CheckpointError:
                    state = None  # cannot happen with atomic writes; checked below
                    raise
                if state["iteration"] >= 4 and state["batch_in_epoch"] > 0:
                    break
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(last)  # never half-written
    killed_at = state["iteration"]
    assert killed_at >= 4
    res = train(resume=tmp_path / "k", stop_after=killed_at + 2, progress=False)
    assert res.iterations == killed_at + 2
    assert not list((tmp_path / "k").glob(".*.tmp"))  # a write cut by the kill is cleaned up


def test_cli_resume_with_nothing_prints_one_line(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "pixelwise.cli", "train", "--resume", str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Nothing to resume" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, says", [
    (["--batch", "0"], "batch_size (--batch) = 0"),
    (["--lr", "-1"], "lr = -1.0"),
    (["--crop", "0,0"], "crop = (0, 0)"),
    (["--epochs", "0"], "epochs = 0"),
    (["--time", "0"], "time_budget (--time) = 0.0"),
    (["--max-iters", "0"], "max_iters = 0"),
    (["--val-interval", "0"], "val_interval = 0"),
    (["--workers", "-2"], "workers = -2"),
    (["--freeze", "-1"], "freeze_stages (--freeze) = -1"),
    (["--base-scale", "0"], "base_scale = 0.0"),
    (["--scale", "2,1"], "scale_range (--scale) = (2.0, 1.0)"),
    (["--pretrained", "missing.pth"], "Pretrained weights file not found: missing.pth"),  # left a run folder
    (["--config", "CONFIG_TEXT"], "must be a mapping of options"),
    (["--config", "CONFIG_UNKNOWN"], "Unknown augment option(s): zoom"),
])
def test_train_options_that_cannot_work_are_refused_before_any_work(tiny_dataset: Path, tmp_path: Path, capsys,
                                                                    args, says):
    from pixelwise.cli import main

    (tmp_path / "a.txt").write_text("just a sentence, not options")
    (tmp_path / "u.yaml").write_text("augment:\n  zoom: 2\n")
    args = [{"CONFIG_TEXT": str(tmp_path / "a.txt"), "CONFIG_UNKNOWN": str(tmp_path / "u.yaml")}.get(a, a) for a in args]
    code = main(["train", str(tiny_dataset), "--project", str(tmp_path / "runs"), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and says in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


def test_a_run_folder_in_use_is_refused(tiny_dataset: Path, tmp_path: Path):
    """--exist-ok into the folder of a run still training made both write last.pt, best.pt and
    results.csv over each other; the folder's lock now refuses the second process in one line."""
    from pixelwise.engine.run_lock import RunLock
    from pixelwise.errors import ConfigError

    (tmp_path / "k").mkdir()
    held = RunLock(tmp_path / "k").acquire()  # as a run training there holds it
    code = subprocess.run([sys.executable, "-m", "pixelwise.cli", "train", str(tiny_dataset), "--project",
                           str(tmp_path), "--name", "k", "--exist-ok", "--max-iters", "1", "--crop", "64,96",
                           "--pretrained", "none", "--quiet"], capture_output=True, text=True)
    assert code.returncode == 2 and "is in use by a training process (pid" in code.stderr, code.stderr
    assert not (tmp_path / "k" / "config.yaml").exists()
    held.release()
    res = train(tiny_dataset, project=str(tmp_path), name="k", exist_ok=True, max_iters=1, epochs=1, **TINY)
    assert res.best.exists()
    RunLock(tmp_path / "k").acquire().release()  # released when the run ended
    first = RunLock(tmp_path / "k").acquire()
    with pytest.raises(ConfigError, match="in use"):
        RunLock(tmp_path / "k").acquire()
    # a --resume refused by the lock leaves the live run's half-written files alone
    train(tiny_dataset, project=str(tmp_path), name="k2", epochs=2, stop_after=1, **TINY)  # resumable
    live = RunLock(tmp_path / "k2").acquire()
    stray = tmp_path / "k2" / ".last.pt.live.tmp"
    stray.write_bytes(b"being written")
    with pytest.raises(ConfigError, match="in use"):
        train(resume=tmp_path / "k2", progress=False)
    assert stray.exists()
    live.release()
    # a process forked while the lock was held (a DataLoader worker) does not keep it after release
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
    child.start()
    try:
        first.release()
        RunLock(tmp_path / "k").acquire().release()
    finally:
        child.kill()
        child.join()


def test_values_that_trained_before_the_checks_still_validate():
    """numpy numbers from a sweep, 'hflip: false', and the 0 that meant 'off' in earlier runs'
    config.yaml (time_budget, max_iters): refusing them broke sweeps and --resume of old runs."""
    import numpy as np

    from pixelwise.config import TrainConfig

    raw = TrainConfig().to_dict()
    raw.update(batch_size=np.int64(4), epochs=np.int64(2), lr=np.float32(1e-3), time_budget=0, max_iters=0,
               val_max_images=0)
    raw["augment"].update(hflip=False, crop=[np.int64(64), 96])
    raw["model"]["pretrained"] = "none"  # as on the command line (was read as a file name)
    cfg = TrainConfig.from_dict(raw).validate()
    assert cfg.model.pretrained is None and cfg.time_budget is None and cfg.max_iters is None and cfg.val_max_images is None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # the run folder's config.yaml: numpy numbers as plain ones
        cfg.save(Path(tmp) / "config.yaml")
        again = TrainConfig.load(Path(tmp) / "config.yaml")
    assert again.batch_size == 4 and type(again.batch_size) is int and again.augment.crop == (64, 96)


def test_a_checkpoint_saved_as_code_pt_is_not_taken_for_torchscript(tiny_run, tmp_path: Path):
    """torch.save names the archive folder after the file: code.pt holds code/data.pkl, which the
    first TorchScript test ('a code/ folder') refused."""
    from pixelwise.engine.model_file import is_torchscript_archive

    ckpt = load_checkpoint(tiny_run.best)
    torch.save(ckpt, tmp_path / "code.pt")
    assert load_checkpoint(tmp_path / "code.pt")["format"] == ckpt["format"]
    torch.jit.script(torch.nn.Conv2d(3, 3, 1)).save(str(tmp_path / "scripted.pt"))
    assert is_torchscript_archive(tmp_path / "scripted.pt") and not is_torchscript_archive(tmp_path / "code.pt")
