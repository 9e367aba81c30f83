from pathlib import Path

import pytest
import yaml

from pixelwise.data.pairing import paired_samples
from pixelwise.data.spec import DatasetSpec
from pixelwise.errors import ConfigError, DatasetError
from tests.conftest import CAMVID, needs_camvid


@needs_camvid
def test_camvid_description_loads():
    spec = DatasetSpec.load(CAMVID / "dataset.yaml")
    assert spec.num_classes == 11 and spec.ignore_index == 11
    assert spec.names[2] == "Pole" and spec.colors[3] == (128, 64, 128)
    assert spec.split("train").images == CAMVID / "train" / "images"
    assert spec.split("val").labels == CAMVID / "val" / "labels"


def test_folder_path_uses_dataset_yaml(tiny_dataset: Path):
    assert DatasetSpec.load(tiny_dataset.parent).num_classes == 11


def test_explicit_split_folders_and_default_colours(tmp_path: Path):
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(
        {"path": "x", "train": {"images": "img/tr", "labels": "ann/tr"}, "names": ["bg", "fg"]}))
    spec = DatasetSpec.load(tmp_path / "d.yaml")
    assert spec.split("train").images == tmp_path / "x" / "img" / "tr"
    assert len(spec.colors) == 2 and spec.colors[0] != spec.colors[1]
    assert spec.ignore_index == 255


def test_missing_description_names_the_file(tmp_path: Path):
    with pytest.raises(DatasetError, match="nope.yaml"):
        DatasetSpec.load(tmp_path / "nope.yaml")


def test_numbers_written_other_ways_are_read(tmp_path: Path):
    """255.0, "255" and float colours are whole numbers all the same (accepted before type checks)."""
    raw = {"train": "t", "names": ["a", "b"], "ignore_index": "255", "colors": [[0.0, 0, 0], ["1", 2, 3.0]]}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(raw))
    spec = DatasetSpec.load(tmp_path / "d.yaml")
    assert spec.ignore_index == 255 and spec.colors == [(0, 0, 0), (1, 2, 3)]
    raw["ignore_index"] = 255.0
    assert DatasetSpec.from_dict(raw).ignore_index == 255


@pytest.mark.parametrize("raw, match", [
    ({"train": "t", "names": ["a", "b"], "ignore_index": 1}, "ignore_index 1"),
    ({"train": "t"}, "names"),
    ({"names": ["a"]}, "no split"),
    ({"train": "t", "names": {0: "a", 2: "b"}}, "without gaps"),
    ({"train": "t", "names": ["a", "b"], "colors": [[1, 2, 3]]}, "1 colours for 2 classes"),
    # a value of the wrong type: named with its key, not a traceback from deep inside
    ({"train": "t", "names": ["a", "b"], "ignore_index": "eleven"}, "'ignore_index: eleven' is not a whole number"),
    ({"train": "t", "names": ["a", "b"], "ignore_index": None}, "'ignore_index: None' is not a whole number"),
    ({"train": "t", "names": {"zero": "a", 1: "b"}}, "names key 'zero' is not a class id"),
    ({"train": "t", "names": ["a", "b"], "colors": [[1, 2, 3], [128, 128, "grey"]]}, "is not \\[r, g, b\\]"),
    ({"train": "t", "names": ["a", "b"], "colors": {"x": [1, 2, 3], 1: [4, 5, 6]}}, "colors key 'x'"),
    ({"train": "t", "names": ["a", "b"], "colors": "red"}, "'colors: red' is not a list"),
    ({"train": "t", "names": ["a", "b"], "path": 5}, "'path: 5' must be text"),
    ({"train": "t", "names": ["a", "b"], "images": 5}, "'images: 5' must be text"),
    ({"train": "t", "names": ["a", "b"], "label_suffix": 5}, "'label_suffix: 5' must be text"),
    ({"train": {"images": 3, "labels": "l"}, "names": ["a", "b"]}, "'train: images: 3' must be text"),
    ({"train": "t", "names": ["a", "b"], "format": ["masks"]}, "'format: \\['masks'\\]' must be text"),
])
def test_bad_descriptions_are_explained(tmp_path: Path, raw, match):
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=match) as err:
        DatasetSpec.load(tmp_path / "d.yaml")
    assert "Fix:" in str(err.value) and "d.yaml" in str(err.value)


def test_an_image_passed_as_the_description_is_explained(tmp_path: Path):
    (tmp_path / "street.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)))
    with pytest.raises(ConfigError, match="street.png is not a text file.*Fix: pass the dataset's .yaml"):
        DatasetSpec.load(tmp_path / "street.png")


def test_missing_split_is_explained(tiny_dataset: Path):
    with pytest.raises(DatasetError, match="no 'test' split"):
        DatasetSpec.load(tiny_dataset).split("test")


def test_a_model_is_checked_against_the_dataset_classes(tiny_dataset: Path, onnx_model, tiny_run, capsys):
    """Another class count is refused; other class names (an order that may differ) are warned
    about on one line, by the CLI's val for a checkpoint and for an export alike, and still scored."""
    import warnings

    from pixelwise.cli import main

    spec = DatasetSpec.load(tiny_dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec.check_model(11, [n.upper().replace("SIGNSYMBOL", "sign_symbol") for n in spec.names], "m.onnx", fix="x")
    with pytest.raises(DatasetError, match=r"predicts 3 classes but dataset .*dataset.yaml has 11"):
        spec.check_model(3, ["a", "b", "c"], "m.onnx", fix="x")
    names = list(spec.names)
    names[2], names[5] = names[5], names[2]  # two classes swapped
    with pytest.warns(UserWarning, match=r"name 2 of 11 classes differently \(class 2: 'Tree' in the model, "
                                         r"'Pole' in the dataset; class 5: 'Pole' .*same order"):
        spec.check_model(11, names, "m.onnx", fix="x")

    raw = yaml.safe_load(tiny_dataset.read_text())
    raw["names"] = {i: f"n{i}" for i in range(11)}
    raw["path"] = str(tiny_dataset.parent)
    renamed = tiny_dataset.parent / "renamed.yaml"
    renamed.write_text(yaml.safe_dump(raw))
    for model in (onnx_model, tiny_run.best):
        assert main(["val", "--model", str(model), "--data", str(renamed), "--quiet"]) == 0
        err = capsys.readouterr().err
        line = next(ln for ln in err.splitlines() if "name 11 of 11 classes differently" in ln)
        assert line.startswith("pixelwise: warning: Model ") and "class 0: 'Sky' in the model, 'n0'" in line


def test_the_recorded_dataset_is_found_from_any_working_directory(tiny_dataset, tmp_path, monkeypatch):
    """A model trained on 'tiny/dataset.yaml' (relative) recorded its folders relative, with the
    root inside each split folder: 'val --model best.pt' then looked in tiny/tiny/val/images,
    from every directory."""
    monkeypatch.chdir(tiny_dataset.parent.parent)
    record = DatasetSpec.load("tiny/dataset.yaml").to_dict()
    assert Path(record["path"]).is_absolute() and Path(record["val"]["images"]).is_absolute()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = DatasetSpec.from_record(record)
    assert spec.split("val").images == tiny_dataset.parent / "val" / "images"
    assert len(paired_samples(spec.split("val"))) == 3

    # a record written before: relative folders under a relative root, read from where training ran
    legacy = {**record, "path": "tiny", "val": {"images": "tiny/val/images", "labels": "tiny/val/labels"},
              "train": {"images": "tiny/train/images", "labels": "tiny/train/labels"}}
    monkeypatch.chdir(tiny_dataset.parent.parent)
    assert len(paired_samples(DatasetSpec.from_record(legacy).split("val"))) == 3
    # ... one with an absolute split beside relative ones (the absolute one was never doubled)
    mixed = {**legacy, "train": record["train"]}
    assert len(paired_samples(DatasetSpec.from_record(mixed).split("val"))) == 3
    # a root that is only a prefix of the folders' first name is not theirs ('tin' vs 'tiny')
    assert DatasetSpec.from_record({**legacy, "path": "tin"}).split("val").images == Path("tin/tiny/val/images")
