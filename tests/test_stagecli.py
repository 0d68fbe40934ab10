"""zooscope.stagecli: what every stage process gets from loading its study."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, TINY_STUDY, write_study

#: In a fresh process: load the study as a stage does, then load the libraries that bring their own BLAS and OpenMP
#: (scipy's OpenBLAS, FAISS's), and report every pool's threads.
PROBE = """
import json, sys
from zooscope.stagecli import load
load(sys.argv[1])
import faiss, scipy.linalg, threadpoolctl
print(json.dumps(sorted({(i["internal_api"], i["filepath"].rsplit("/", 1)[-1], i["num_threads"])
                         for i in threadpoolctl.threadpool_info()})))
"""


def test_a_stage_caps_every_blas_and_openmp_pool_at_the_studys_threads_those_loaded_later_included(tmp_path):
    """The numbers of a probe depend on how many threads share its products, so the study's ``threads`` caps the
    pools of numpy, scipy and FAISS whatever the machine has (here 1, below the 2 they take on 2 cores)."""
    study = write_study(tmp_path / "params.yaml", {**TINY_STUDY, "threads": 1})
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(study)], capture_output=True, text=True, check=True, env=env)
    pools = json.loads(out.stdout)
    apis = {api for api, _, _ in pools}
    assert {"openblas", "openmp"} <= apis and len(pools) >= 3, pools  # numpy's, scipy's and FAISS's, and OpenMP
    assert {threads for _, _, threads in pools} == {1}, pools
