"""mistakes: the mistake taxonomy, consensus errors, neighbour disagreement, MMD-critic prototypes and
criticisms, and adversarial robustness and transfer (science.md section 7). Writes under ``--out``:

- ``taxonomy.parquet`` (per model: correct, near misses, far misses), ``confusions.parquet`` (top pairs),
- ``consensus.parquet`` (ranked consensus errors with the zoo's votes and nearest training samples),
- ``neighbours.parquet`` (ranked neighbour disagreement in the strongest model's eval embedding),
- ``prototypes.parquet`` (MMD-critic picks per model and class), ``prototype_overlap.parquet``,
- ``robustness.parquet`` (accuracy under FGSM / PGD per eps), ``transfer.parquet`` (every ordered pair,
  with the pair's kappa from ``--pairs``), ``adversarial.parquet`` and ``adversarial_images.npy``
  (examples crafted on the strongest model, explained by their nearest training samples);

``--metrics`` (JSON, a DVC metric: counts per category and the transfer / kappa correlation; the
ensemble stage owns metrics/study.json, so this stage writes its own file) and ``--transfer-plot``
(CSV heatmap data). The finding lines are printed last."""

from __future__ import annotations

import sys
from pathlib import Path

from stages._common import load, parser, run, use_threads


def _classifiers(args, ids, dataset, positions, device):
    """Each model loaded once, on ``device``: (classifier, clean pixel inputs, embedder) per id."""
    import torch

    from zooscope.adversarial import classifier, pixel_inputs
    from zooscope.extract import embedding_fn
    from zooscope.io import read_json
    from zooscope.probe import load_probe
    from zooscope.zoo.sources import load_network

    fns, inputs, embedders = {}, {}, {}
    for mid in ids:
        card = read_json(Path(args.models) / mid / "card.json")
        model = load_network(card["builder"], str(Path(args.models) / mid / "weights.safetensors"))
        pre = card["preprocess"]
        probe = None if card["has_head"] else vars(load_probe(Path(args.probes) / mid / "probe.safetensors"))
        fns[mid] = classifier(model, mean=pre["mean"], std=pre["std"], probe=probe, device=device)
        inputs[mid] = pixel_inputs(dataset, positions, pre)
        m = torch.tensor(pre["mean"], device=device).view(1, -1, 1, 1)
        s = torch.tensor(pre["std"], device=device).view(1, -1, 1, 1)
        embed = embedding_fn(model)
        embedders[mid] = lambda x, e=embed, m=m, s=s: _no_grad(lambda: e((x.to(m.device) - m) / s)[0].float().cpu().numpy())
    return fns, inputs, embedders


def _no_grad(f):
    import torch

    with torch.inference_mode():
        return f()


def _findings(n_consensus: int, n_samples: int, share: float, strongest: str, n_neigh: int, corr: dict,
              transfer) -> list[str]:
    rho = corr["spearman"]
    off = transfer.filter(transfer["source"] != transfer["target"])
    lines = [f"consensus errors: {n_consensus} of {n_samples} eval samples ({n_consensus / n_samples:.1%}) have at "
             f"least {share:.0%} of the zoo predicting the same wrong class (candidate label errors or ambiguous images)",
             f"neighbour disagreement: {n_neigh} eval samples disagree with the majority label of their neighbours "
             f"in {strongest}'s embedding"]
    if rho == rho:  # not nan
        how = "more" if rho > 0 else "less"
        lines.append(f"adversarial transfer: examples crafted on one model fool another {how} often the more the two "
                     f"make the same mistakes (Spearman rho {rho:+.2f} between transfer rate and error consistency "
                     f"kappa over {corr['n']} ordered pairs; mean transfer rate {off['transfer_rate'].mean():.2f})")
    else:
        lines.append("adversarial transfer: too few pairs with kappa to relate transfer to error consistency")
    return lines


def work(args) -> None:
    import numpy as np
    import polars as pl
    import torch

    from zooscope.data.datasets import load_dataset
    from zooscope.extract import pick_device
    from zooscope.io import write_csv, write_json, write_npy, write_parquet
    from zooscope.mistakes_tables import (adversarial_examples, consensus_table, critic_tables, kappa_matrix,
                                          neighbour_table, robustness_table, taxonomy_tables, transfer_table)
    from zooscope.zooartifacts import read_predictions

    study, _ = load(args.params)
    use_threads(study)
    cfg, ids = study.mistakes, list(study.models)
    dataset = load_dataset(study.dataset)
    preds = read_predictions(args.predictions, ids)
    eval_pos = dataset.split("eval")
    if not np.array_equal(dataset.sample_ids[eval_pos], preds.sample_ids):
        raise ValueError(f"{args.predictions}: eval sample ids differ from the dataset's eval split; re-run predict")
    nc = dataset.num_classes
    strongest = ids[int(preds.correct.mean(1).argmax())]
    emb = Path(args.embeddings)
    train_pos = dataset.split("train")
    explain = {"train": np.load(emb / strongest / "train.npy", mmap_mode="r"),
               "eval": np.load(emb / strongest / "eval.npy", mmap_mode="r"),
               "train_ids": dataset.sample_ids[train_pos], "train_labels": dataset.labels[train_pos]}
    out = Path(args.out)
    taxonomy, confusions = taxonomy_tables(args.predictions, ids, num_classes=nc, top_confusions=cfg.top_confusions)
    consensus = consensus_table(preds, num_classes=nc, min_share=cfg.consensus_share, explain=explain,
                                k=cfg.explain_k, show=cfg.show)
    neighbours = neighbour_table(np.asarray(explain["eval"]), preds.labels, preds.sample_ids, k=cfg.neighbour_k,
                                 num_classes=nc, model=strongest)
    device = pick_device(study.embed.device)
    picks, overlap = critic_tables(emb, ids, preds.labels, preds.sample_ids, num_classes=nc, settings=cfg,
                                   device=device)

    rng = np.random.default_rng(cfg.seed)
    sub = np.sort(rng.choice(len(eval_pos), min(cfg.attack_subset, len(eval_pos)), replace=False))
    fns, inputs, embedders = _classifiers(args, ids, dataset, eval_pos[sub], device)
    y = torch.as_tensor(preds.labels[sub])
    transfer, corr = transfer_table(fns, inputs, y, kappa_matrix(pl.read_parquet(args.pairs), ids), settings=cfg)
    own = transfer.filter(pl.col("source") == pl.col("target")).select(
        pl.col("source").alias("model"), "attack", "eps", "accuracy")
    robustness = pl.concat([robustness_table(fns, inputs, y, settings=cfg, skip=(cfg.transfer_attack, cfg.transfer_eps)),
                            own]).sort("model", "attack", "eps", maintain_order=True)
    adv_rows, adv_images = adversarial_examples(fns, strongest, inputs[strongest], y, preds.sample_ids[sub],
                                                embed=embedders[strongest], explain=explain, settings=cfg)

    tables = {"taxonomy": taxonomy, "confusions": confusions, "consensus": consensus, "neighbours": neighbours,
              "prototypes": picks, "prototype_overlap": overlap, "robustness": robustness, "transfer": transfer,
              "adversarial": adv_rows}
    for name, frame in tables.items():
        write_parquet(out / f"{name}.parquet", frame)
    write_npy(out / "adversarial_images.npy", adv_images)
    write_csv(args.transfer_plot, transfer.select("source", "target", "accuracy"))
    findings = _findings(len(consensus), len(preds.labels), cfg.consensus_share, strongest, len(neighbours), corr,
                         transfer)
    at = robustness.filter((pl.col("attack") == cfg.transfer_attack) & (pl.col("eps") == cfg.transfer_eps))
    write_json(args.metrics, {
        "consensus_errors": len(consensus), "neighbour_disagreements": len(neighbours), "strongest": strongest,
        "eval_samples": len(preds.labels), "attack_subset": len(sub),
        "taxonomy": {r["model"]: {k: r[k] for k in ("correct", "near_miss", "far_miss")} for r in taxonomy.to_dicts()},
        "prototype_overlap_mean": float(overlap["overlap"].mean()) if len(overlap) else 0.0,
        f"robust_accuracy_{cfg.transfer_attack}_{cfg.transfer_eps:g}": dict(at.select("model", "accuracy").iter_rows()),
        "transfer_kappa": {k: (None if v != v else v) for k, v in corr.items()},
        "findings": findings,
    })
    print(f"mistakes: {len(ids)} models, strongest {strongest}; {len(picks)} prototypes/criticisms; "
          f"{len(sub)} images attacked on {device} ({', '.join(f'{e:g}' for e in cfg.eps)} eps), transfer {len(ids)}x{len(ids)}")
    print("\n".join(findings))


def main(argv=None) -> int:
    p = parser(__doc__)
    for name, what in (("models", "folder of <id>/card.json and weights.safetensors"),
                       ("embeddings", "folder of <id>/{train,eval}.npy"),
                       ("probes", "folder of <id>/probe.safetensors (headless models)"),
                       ("predictions", "folder of <id>/eval.parquet and eval_probs.npy"),
                       ("pairs", "the ensemble stage's per-pair table (kappa)"),
                       ("out", "folder of the mistakes tables"),
                       ("metrics", "mistakes metrics (JSON, a DVC metric)"),
                       ("transfer-plot", "transfer matrix heatmap data (CSV)")):
        p.add_argument(f"--{name}", required=True, help=what)
    return run(work, p, argv)


if __name__ == "__main__":
    sys.exit(main())
