#!/usr/bin/env bash
# Fill .gpu_carry/ (git-ignored) with what benchmarks/gpu.py needs on the lent GPU machine, which
# has Python 3.12 with torch, timm, torchvision and OpenCV but no registry: the peers' wheels (pure
# Python, same versions as here), a trained checkpoint and CamVid val (images, labels, a dataset YAML). About 23 MB of the
# 64 MiB a call carries. Usage: benchmarks/gpu_carry.sh [CHECKPOINT] (default runs/demo/best.pt,
# which `make demo` writes). It adds /.gpu_carry/ to .git/info/exclude (this clone's own ignore
# list) so that the folder never lands in a commit.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:-runs/demo/best.pt}
val=../shared/datasets/camvid/val/images
[ -f "$ckpt" ] || { echo "no checkpoint at $ckpt: run 'make demo' or pass one" >&2; exit 1; }
grep -qx '/.gpu_carry/' .git/info/exclude 2>/dev/null || echo '/.gpu_carry/' >> .git/info/exclude
rm -rf .gpu_carry && mkdir -p .gpu_carry/whl
py=.venv/bin/python
ver() { $py -c "import importlib.metadata as m; print(m.version('$1'))"; }
$py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .gpu_carry/whl \
    "ultralytics==$(ver ultralytics)" "segmentation-models-pytorch==$(ver segmentation-models-pytorch)"
cp "$ckpt" .gpu_carry/best.pt
if [ -d "$val" ]; then
    # CamVid val as a one-split dataset (gpu_predict.py scores it; gpu.py reads its images)
    mkdir -p .gpu_carry/camvid/val && cp -r "$val" "$val/../labels" .gpu_carry/camvid/val/
    sed -e 's/^train: train$/train: val/' -e '/^test: test$/d' "$val/../../dataset.yaml" > .gpu_carry/camvid/dataset.yaml
else
    echo "no $val: the label agreement and gpu_predict.py are left out" >&2
fi
du -sh .gpu_carry
