#!/usr/bin/env bash
# Fine-tune the teacher, label, and train transformer students on a lent GPU machine, then store the trained
# models at ~2 bytes a parameter for the trip back (docs/results.md, "ChnSentiCorp, trained on a lent GPU").
#
# Runs there, from the checkout, with these carried (prepared here):
#   .gpu/base         the teacher base pruned to the task's texts (python -m tinykd.compress.device_carry base)
#   .gpu/data         a copy of the task's source files (TINYKD_DATA points there)
#   .whl              wheels the GPU image lacks (pydantic, ...); optional
#   runs/<task>/data, runs/<task>/augment/{augmented.parquet,summary.json}   the splits and augmented rows
# Back here: untar into runs/, `python -m tinykd.compress.device_carry grow` each model dir and .gpu/base, then run
# every later stage with the same --set teacher.base=.gpu/base --set teacher.head=mean and TINYKD_DATA=.gpu/data
# (the task's source paths are part of the teacher's fingerprint). Run single stages, not `all`: the data stage's
# fingerprint holds the source path too. A student that starts from another's checkpoint (init: checkpoint)
# holds that checkpoint's digest, which the fp16 trip changes: `distill` it on the GPU machine only, and pass
# `--student` here for the rest.
#
#   bash compress/device_train.sh configs/chnsenticorp.yaml tiny4l256 tiny4l256-td2x2 tiny4l384
set -euo pipefail
config=$1
shift
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
# tinykd installs as one package (the stage folders become tinykd.teacher, ...): install this checkout beside the
# wheels, and keep the checkout's own tinykd/ folder off sys.path (PYTHONSAFEPATH) so the installed one is used.
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/tinykd-site .
export PYTHONPATH=/tmp/tinykd-site:/tmp/site PYTHONSAFEPATH=1
export TINYKD_DATA=.gpu/data PYTHONUNBUFFERED=1
python3 -m tinykd.compress.device_carry grow .gpu/base
python3 -c "from pathlib import Path; from tinykd.artifacts import directory_digest as d; print('base digest', d(Path('.gpu/base')))"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

base=(--config "$config" --set teacher.base=.gpu/base --set teacher.head=mean)
python3 -m tinykd teacher "${base[@]}"
python3 -m tinykd label "${base[@]}"
students=()
for name in "$@"; do students+=(--student "$name"); done
python3 -m tinykd distill "${base[@]}" "${students[@]}"
