"""The one FAISS wrapper: exact nearest neighbours by inner product, on the GPU when one is present.

Queries are processed in blocks so that no [n_queries, n_database] matrix is ever held in memory.
Install ``zooscope[cpu]`` (faiss-cpu) or ``zooscope[gpu]`` (faiss-gpu); both provide ``faiss``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["l2_normalize", "search", "majority_vote", "knn_classify", "faiss_uses_gpu"]


def _faiss():
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - exercised only without faiss installed
        raise ImportError("FAISS is missing: pip install 'zooscope[cpu]' (faiss-cpu) or 'zooscope[gpu]' (faiss-gpu)") from err
    return faiss


def faiss_uses_gpu() -> bool:
    """True when FAISS was built with GPU support and sees at least one GPU."""
    faiss = _faiss()
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` [n, d] scaled to unit L2 norm (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def search(
    database: np.ndarray,
    queries: np.ndarray,
    *,
    k: int,
    exclude_self: bool = False,
    block: int = 8192,
    use_gpu: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` neighbours of each query by inner product.

    Args:
        database: float [n, d]; normalise rows first for cosine similarity.
        queries: float [m, d].
        k: neighbours per query.
        exclude_self: ``queries`` is ``database`` and each row's own index must be dropped.
        block: queries per FAISS call.
        use_gpu: force GPU (True) or CPU (False); None picks the GPU when FAISS sees one.

    Returns:
        (scores float32 [m, k], indices int64 [m, k]), best first.
    """
    database = np.ascontiguousarray(database, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if database.ndim != 2 or queries.ndim != 2 or database.shape[1] != queries.shape[1]:
        raise ValueError(f"database {database.shape} and queries {queries.shape} must be 2-D with equal widths")
    if exclude_self and len(database) != len(queries):
        raise ValueError("exclude_self needs queries == database (same number of rows)")
    kk = k + int(exclude_self)
    if kk > len(database):
        raise ValueError(f"k={k} neighbours requested but the database has {len(database)} rows")
    faiss = _faiss()
    index = faiss.IndexFlatIP(database.shape[1])
    if use_gpu if use_gpu is not None else faiss_uses_gpu():
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(database)
    scores = np.empty((len(queries), k), np.float32)
    ids = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), block):
        s, i = index.search(queries[start:start + block], kk)
        if exclude_self:
            own = np.arange(start, start + len(i))[:, None]
            keep = i != own
            # drop the query's own index (or the last neighbour when ties hid it) so k remain
            keep[keep.sum(1) > k, -1] = False
            s, i = s[keep].reshape(len(i), k), i[keep].reshape(len(i), k)
        scores[start:start + len(s)], ids[start:start + len(i)] = s, i
    return scores, ids


def majority_vote(neighbour_labels: np.ndarray, *, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Majority class of each row of ``neighbour_labels`` int [m, k] (nearest first); ties go to the class of
    the nearer neighbour. Returns (class int64 [m], votes int64 [m, num_classes])."""
    neigh = np.asarray(neighbour_labels, np.int64)
    m, k = neigh.shape
    rows = np.arange(m)
    votes = np.zeros((m, num_classes), np.int64)
    np.add.at(votes, (rows[:, None], neigh), 1)
    tied = votes == votes.max(1, keepdims=True)
    pred = np.full(m, -1, np.int64)
    for r in range(k):  # among the tied classes, the one holding the nearest neighbour wins
        take = (pred < 0) & tied[rows, neigh[:, r]]
        pred[take] = neigh[take, r]
    return pred, votes


def knn_classify(
    train: np.ndarray, train_labels: np.ndarray, queries: np.ndarray, *, k: int, num_classes: int
) -> np.ndarray:
    """Cosine k-NN majority vote (ties to the nearer neighbours' class): predicted labels int64 [m]."""
    _, ids = search(l2_normalize(train), l2_normalize(queries), k=k)
    return majority_vote(np.asarray(train_labels, np.int64)[ids], num_classes=num_classes)[0]
