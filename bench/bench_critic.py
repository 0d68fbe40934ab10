"""MMD-critic on one large class: 50,000 x 2,048 synthetic embeddings, 10 prototypes + 10 criticisms.

    python bench/bench_critic.py                          # the issue's size, every row a candidate
    python bench/bench_critic.py --n 10000 --max-candidates 5000

The class is a seeded mixture of 20 Gaussian blobs (float32). The kernel is summed in [block, block]
tiles, so memory stays near the data itself (n x d x 4 bytes) plus a few tiles; the time is dominated
by the n x n_candidates x d kernel sum of the mean embedding. Prints wall and CPU seconds, peak resident
memory (ru_maxrss) and the picks' indices, and fails when the peak exceeds --max-gb.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def synthetic_class(n: int, d: int, *, blobs: int = 20, seed: int = 0) -> np.ndarray:
    """float32 [n, d]: ``blobs`` Gaussian clusters of unequal sizes, generated block by block."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (blobs, d)).astype(np.float32)
    which = rng.choice(blobs, n, p=rng.dirichlet(np.ones(blobs)))
    x = np.empty((n, d), np.float32)
    for start in range(0, n, 4096):
        stop = min(n, start + 4096)
        x[start:stop] = centres[which[start:stop]] + rng.normal(0, 0.7, (stop - start, d)).astype(np.float32)
    return x


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--d", type=int, default=2_048)
    p.add_argument("--prototypes", type=int, default=10)
    p.add_argument("--criticisms", type=int, default=10)
    p.add_argument("--max-candidates", type=int, default=None, help="pick among this many rows (default: all)")
    p.add_argument("--block", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-gb", type=float, default=8.0)
    args = p.parse_args(argv)

    import torch

    from zooscope.mistakes import mmd_critic

    torch.set_num_threads(args.threads)
    x = synthetic_class(args.n, args.d)
    print(f"class: {args.n} x {args.d} float32 ({x.nbytes / 2**30:.2f} GiB), "
          f"{args.max_candidates or args.n} candidates, block {args.block}, {args.threads} threads")
    wall, cpu = time.perf_counter(), time.process_time()
    got = mmd_critic(x, prototypes=args.prototypes, criticisms=args.criticisms, max_candidates=args.max_candidates,
                     block=args.block)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"prototypes {got.prototypes.tolist()}\ncriticisms {got.criticisms.tolist()}")
    print(f"mmd_critic: {wall:.1f} s wall, {cpu:.1f} s CPU; peak RSS {peak_gb:.2f} GiB (limit {args.max_gb} GiB); "
          f"a full n x n float32 kernel would take {args.n**2 * 4 / 2**30:.1f} GiB")
    return 0 if peak_gb < args.max_gb else 1


if __name__ == "__main__":
    sys.exit(main())
