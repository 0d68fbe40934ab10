"""probe@<model>: a multinomial linear probe on the embedding (L2 strength chosen on the calibration
split) and cosine k-NN accuracy (FAISS). Writes ``<out>/probe.json``, the probe's weights
``<out>/probe.safetensors`` (mean, scale, weight, bias: the mistakes stage attacks headless models
through them), and the probe's logits
``<out>/calibration_logits.npy`` and ``<out>/eval_logits.npy`` (float32 [n, C]; the predictions of
headless models)."""

from __future__ import annotations

import sys
from pathlib import Path

from stages._common import load, model_parser, run


def work(args) -> None:
    import numpy as np

    from zooscope.data.datasets import load_dataset
    from zooscope.io import write_json, write_npy
    from zooscope.probe import fit_probe, knn_accuracy, save_probe

    study, _ = load(args.params, args.model)
    dataset = load_dataset(study.dataset)
    emb = Path(args.embeddings)
    x = {s: np.load(emb / f"{s}.npy", mmap_mode="r") for s in ("train", "calibration", "eval")}
    y = {s: dataset.labels[dataset.split(s)] for s in x}
    for s in x:
        if len(x[s]) != len(y[s]):
            raise ValueError(f"{emb / (s + '.npy')}: {len(x[s])} rows but the {s} split has {len(y[s])} samples; "
                             "re-run the embed stage")
    probe = fit_probe(x["train"], y["train"], x["calibration"], y["calibration"], num_classes=dataset.num_classes,
                      l2_grid=study.probe.l2_grid, max_iter=study.probe.max_iter, tol=study.probe.tol)
    out = Path(args.out)
    save_probe(out / "probe.safetensors", probe)
    logits = {s: probe.logits(x[s]) for s in ("calibration", "eval")}
    for s, lg in logits.items():
        write_npy(out / f"{s}_logits.npy", lg)
    probe_acc = float((logits["eval"].argmax(1) == y["eval"]).mean())
    knn_acc = knn_accuracy(x["train"], y["train"], x["eval"], y["eval"], k=study.probe.knn_k,
                           num_classes=dataset.num_classes)
    write_json(out / "probe.json", {
        "probe_acc": probe_acc, "knn_acc": knn_acc, "knn_k": study.probe.knn_k, "l2": probe.l2,
        "l2_selection": {f"{k:g}": v for k, v in probe.selection.items()}, "embed_dim": int(x["train"].shape[1]),
    })
    print(f"probe@{args.model}: probe {probe_acc:.4f} (l2 {probe.l2:g}), {study.probe.knn_k}-NN {knn_acc:.4f}")


def main(argv=None) -> int:
    p = model_parser(__doc__)
    p.add_argument("--embeddings", required=True, help="embeddings folder of the model")
    p.add_argument("--out", required=True, help="probe folder")
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
