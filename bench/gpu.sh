#!/usr/bin/env bash
# The GPU run of issue 14, in one go: correctness first (bench/gpu_check.py: our forward
# against transformers at the 7B shape in bf16, the Triton kernel against its torch
# reference), then the timings (bench/gpu_engine.py, when present). One table each.
# Exits non-zero when a check failed, after the timings still ran (their numbers help
# to see what is wrong). Extra arguments go to gpu_check.py, e.g. `--cpu --tiny` to
# try the script on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

echo "== correctness: bench/gpu_check.py $*"
"$PY" bench/gpu_check.py "$@"
status=$?

if [ -f bench/gpu_engine.py ]; then
  echo "== timings: bench/gpu_engine.py"
  case " $* " in
    *" --cpu "*) echo "(skipped with --cpu: the timings are for the GPU)" ;;
    *) "$PY" bench/gpu_engine.py || status=$? ;;
  esac
else
  echo "== timings: bench/gpu_engine.py is not in this tree"
fi
exit "$status"
