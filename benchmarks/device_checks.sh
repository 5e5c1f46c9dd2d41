#!/usr/bin/env bash
# The device-dependent tests and the GPU figures, in one run on a lent CUDA machine (whose image has torch, numpy,
# pandas and scikit-learn; the rest travels as wheels in .whl/, see benchmarks/README.md). Writes logs under $OUT.
#   bash benchmarks/device_checks.sh
set -o pipefail
OUT=${OUT:-$(mktemp -d)}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, '·', torch.cuda.get_device_name(), '·', torch.get_num_threads(), 'CPU threads')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider -m "" tests/test_device.py tests/test_wanda.py tests/test_nm.py \
    -k "device or gpu or cuda" 2>&1 | tee "$OUT/device_tests.log"
python3 benchmarks/bench_mnist.py --device auto --repeats 100 2>&1 | tee "$OUT/bench_mnist.log"
python3 benchmarks/bench_wanda_nm.py 2>&1 | tee "$OUT/bench_wanda_nm.log"
