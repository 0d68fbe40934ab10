#!/bin/sh
# Run one stage CLI (stages/<name>.py) with the project's interpreter, so `dvc repro` works whether or
# not a virtual environment is activated: $ZOOSCOPE_PYTHON if set, else ./.venv/bin/python, else python3.
# $ZOOSCOPE_STAGE_LOG, if set, receives the stage's stdout and stderr (the Prefect flow tails it into the
# stage's task log; DVC's own `dvc repro` leaves it unset and the output goes to the terminal).
# OpenBLAS (numpy's and scipy's BLAS) keeps its idle threads spinning for 2^28 cycles after each call unless
# $OPENBLAS_THREAD_TIMEOUT says otherwise; where other work keeps the cores busy, the spinning threads take them
# from the one doing the work: a linear probe of the similarity stage, thousands of small products in a row,
# took 2.6 to 9 s instead of 0.8 to 1.6 s on 2 busy cores. 2^4 cycles lets them sleep at once; the numbers
# stay the same (each product is split into as many threads as before).
# Usage: sh zooscope/run_stage.sh <stage> [args...]
if [ -n "${ZOOSCOPE_PYTHON:-}" ]; then py=$ZOOSCOPE_PYTHON
elif [ -x .venv/bin/python ]; then py=.venv/bin/python
else py=python3
fi
# OpenMP threads (torch's) likewise sleep at once instead of spinning while they wait: the same arithmetic, so
# the same weights bit for bit. Training cnn_base with 2 threads beside another job on 2 cores took 26 and 156 s
# spinning (libgomp's default) and 12 s sleeping; alone on quiet cores 7.7 s spinning, 8.2 to 8.7 s sleeping.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
stage=$1
shift
if [ -n "${ZOOSCOPE_STAGE_LOG:-}" ]; then exec >>"$ZOOSCOPE_STAGE_LOG" 2>&1; fi
exec "$py" -m "stages.$stage" "$@"
