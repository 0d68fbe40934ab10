"""The ``zooscope`` command line.

The pipeline itself runs under DVC (``dvc repro``) or the Prefect flow; this command inspects and
checks a study.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from zooscope import __version__
from zooscope.artifacts import DIFF_REPORT, EMBEDDINGS, MODEL_METRICS, PAIRS, PARAMS, PREDICTIONS_DIR, STUDY_METRICS
from zooscope.data.datasets import SPLITS

#: Where ``zooscope explain`` writes its page unless --out says otherwise.
EXPLAIN_PAGE = "reports/explain/{model}-{sample_id}.html"

EPILOG = """\
typical session:
  make study                 set up .venv and run the default study (dvc repro)
  zooscope validate          check params.yaml after editing it
  dvc repro                  re-run what changed (only the stages of changed models)
  zooscope table             per-model accuracy, quality and category relative to the base
  zooscope samples           the valid sample ids of each split (eval ids start at 60000 on Fashion-MNIST)
  zooscope explain cnn_base 60000   cnn_base's prediction for eval sample 60000 and its nearest training
                                    samples, also as a page with the images (reports/explain/cnn_base-60000.html)
  zooscope partners cnn_base  cnn_base's partners ranked by the ensemble gain predicted without labels
  dvc metrics show           the same numbers as DVC metrics (metrics/models/<id>.json)
  zooscope diff HEAD~1 HEAD  what changed between two commits (also written to reports/diff.html)

model sources (params.yaml -> models.<id>.source):
  recipe:<name>      trained here: supervised, distill, simclr, autoencoder, random_features
  timm:<arch.tag>    a timm model from the Hugging Face hub, e.g. timm:resnet50.a1_in1k
  hf-hub:<repo>      a timm model repository on the hub
  torchvision:<name> torchvision weights (models.<id>.weights, default DEFAULT)
  file:<path>        a local safetensors / weights-only checkpoint for models.<id>.arch
"""


def _validate(args: argparse.Namespace) -> int:
    from zooscope.config import compression_roots, lint_zoo, load_study
    from zooscope.vocab import pair_categories

    study = load_study(args.params)
    print(f"{args.params}: valid. dataset {study.dataset.source}, {len(study.models)} models, base {study.base}")
    if not args.schema_only:  # the files too: split sizes the dataset cannot fill, empty class folders, damaged files
        from zooscope.data.datasets import SPLITS, load_dataset

        from zooscope.mistakes.taxonomy import near_miss_k

        data = load_dataset(study.dataset)
        print(f"dataset: {len(data.labels):,} images in {data.num_classes} classes; "
              + ", ".join(f"{s} {len(data.split(s)):,}" for s in SPLITS))
        near_miss_k(study.mistakes.near_miss_k, num_classes=data.num_classes)  # settings that need the class count
    tags = {mid: spec.tags.model_dump() for mid, spec in study.models.items()}
    others = [(study.base, mid) for mid in study.models if mid != study.base]
    counts: dict[str, int] = {}
    for cat in pair_categories(others, tags, roots=compression_roots(study.models)):
        counts[cat] = counts.get(cat, 0) + 1
    print("models by category relative to the base: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    warnings = lint_zoo(study)
    print(f"zoo design: {len(warnings)} warning(s)" if warnings else "zoo design: no warnings")
    for w in warnings:
        print(f"  - {w.kind}: {w.message}")
    return 0


def _table(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zooscope.config import load_study
    from zooscope.summary import format_table, model_table

    study = load_study(args.params)
    frame = model_table(study, metrics_dir=args.metrics_dir)
    print(f"dataset {study.dataset.source}; base {study.base}; category = the most divergent methodology tag vs the base")
    print(format_table(frame))
    study_metrics = Path(args.study_metrics)
    if study_metrics.exists():  # the finding in sentences, once the ensemble stage has run
        from zooscope.io import read_json
        from zooscope.summary import study_facts

        for sentence in study_facts(study, read_json(study_metrics))["headline"]:
            print(f"\n{sentence}")
    missing = frame.filter(frame["top1"].is_null())["model"].to_list()
    if missing:
        print(f"\nno metrics yet for: {', '.join(missing)} (run dvc repro)")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zooscope.diff import diff_revisions, format_diff
    from zooscope.io import atomic_path
    from zooscope.report.changes import render_diff

    diff = diff_revisions(args.repo, args.rev_a, args.rev_b)
    print(format_diff(diff))
    if args.html:
        out = Path(args.repo) / args.html
        with atomic_path(out, suffix=".html") as tmp:
            tmp.write_text(render_diff(diff), encoding="utf-8")
        print(f"\nwritten: {out}")
    return 0


def _model(study, model: str, params: str) -> str:
    """``model``, checked to be one of the study's model ids."""
    if model not in study.models:
        raise ValueError(f"no model {model!r} in {params}; ids: {', '.join(study.models)}")
    return model


def _explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zooscope.config import load_study
    from zooscope.data.datasets import load_dataset
    from zooscope.io import atomic_path
    from zooscope.mistakes.explain import describe_prediction, explain_sample, sample_prediction

    study = load_study(args.params)
    model = _model(study, args.model, args.params)
    dataset = load_dataset(study.dataset)
    embeddings = Path(args.embeddings) / model
    query, rows = explain_sample(embeddings, dataset, args.sample_id, k=args.k)
    prediction = sample_prediction(model, dataset, args.sample_id, predictions=args.predictions,
                                   embeddings=args.embeddings, metrics=args.metrics_dir)
    print(f"sample {query['sample_id']} ({query['split']} split, label {query['label']} {query['class']})")
    print(describe_prediction(model, query, prediction, dataset.classes))
    print(f"its {len(rows)} nearest training samples in {model}'s embedding (cosine similarity):")
    print(f"{'rank':>4}  {'sample_id':>9}  {'label':>5}  {'class':<16}  similarity")
    for r in rows:
        print(f"{r['rank']:>4}  {r['sample_id']:>9}  {r['label']:>5}  {r['class']:<16}  {r['similarity']:.4f}")
    agree = sum(r["label"] == query["label"] for r in rows)
    print(f"{agree} of {len(rows)} neighbours share the sample's label")
    out = EXPLAIN_PAGE.format(model=model, sample_id=query["sample_id"]) if args.out is None else args.out
    if out:
        from zooscope.report.explain_panel import explain_page

        page = explain_page(dataset, model=model, query=query, neighbours=rows, prediction=prediction,
                            embeddings=str(embeddings))
        with atomic_path(out, suffix=".html") as tmp:
            tmp.write_text(page, encoding="utf-8")
        print(f"written: {out}")
    return 0


def _partners(args: argparse.Namespace) -> int:
    from pathlib import Path

    import polars as pl

    from zooscope.config import load_study
    from zooscope.ensemble.partners import ordered_partners
    from zooscope.io import read_json

    study = load_study(args.params)
    model = _model(study, args.model, args.params)
    if not Path(args.pairs).exists():
        raise FileNotFoundError(f"{args.pairs}: not found; run the ensemble stage (dvc repro ensemble) first")
    pairs, results = pl.read_parquet(args.pairs), read_json(args.study_metrics).get("partners")
    if results is None or "predicted_gain_a" not in pairs.columns:
        raise ValueError(f"{args.pairs} and {args.study_metrics} hold no partner evaluation; re-run the ensemble stage "
                         "(dvc repro ensemble)")
    if study.models[model].parent is not None:
        raise ValueError(f"{model} is a compressed model ({study.models[model].source}): partners are predicted and "
                         "evaluated among the models trained apart; its pairs with its parent are in the report's "
                         "compression section")
    if model not in results["models"]:
        raise ValueError(f"{args.study_metrics}: no partner evaluation of {model!r}; re-run the ensemble stage")
    order = {partner: rank for rank, partner in enumerate(results["models"][model]["predicted_order"])}
    rows = ordered_partners(pairs, model).sort(pl.col("partner").replace_strict(order, default=len(order)))
    print(f"{model}'s partners ranked by the ensemble gain predicted from label-free features (disagreement, top-5 "
          "overlap, CKA, mutual k-NN, confidences) by a ridge fit on the pairs without " + model + ":")
    print(f"{'rank':>4}  {'partner':<20} {'category':<16} {'predicted':>9} {'measured':>9}  {'disagree':>8} "
          f"{'top-5 ov':>8} {'CKA':>6} {'k-NN':>6}")
    for rank, r in enumerate(rows.iter_rows(named=True), 1):
        cells = [f"{v:>{w}.3f}" if v is not None and v == v else f"{'-':>{w}}"
                 for v, w in ((r["disagreement"], 8), (r["top5_overlap"], 8), (r["cka_debiased"], 6), (r["mutual_knn"], 6))]
        print(f"{rank:>4}  {r['partner']:<20} {r['category']:<16} {100 * r['predicted_gain']:>+9.2f} "
              f"{100 * r['gain']:>+9.2f}  " + " ".join(cells))
    print("(gains in points of eval accuracy over the better member; measured = the pair ensemble's, with labels)")
    print(_partners_verdict(model, results))
    return 0


def _partners_verdict(model: str, results: dict) -> str:
    """One line: how the held-out ranking of ``model``'s partners did on this zoo, and the zoo-wide figures."""
    mine, zoo = results["models"][model], results["summary"]
    k = results["top_k"]
    rho = "undefined (a constant ranking or gain)" if mine["spearman"] is None else f"{mine['spearman']:+.2f}"
    where = f"in the top {k}" if mine["hit"] else f"not in the top {k}"
    mean = "undefined" if zoo["spearman_mean"] is None else f"{zoo['spearman_mean']:+.2f}"
    return (f"On this zoo: Spearman {rho} between this ranking and the measured gains; the best measured partner "
            f"({', '.join(mine['best'])}) is ranked {mine['best_rank']}, {where} (chance {mine['chance']:.0%}). "
            f"Every model left out in turn: mean Spearman {mean} over {zoo['spearman_models']} models, best partner in "
            f"the top {k} for {zoo['hit_rate']:.0%} of {zoo['models']} (chance {zoo['chance']:.0%}).")


def _class_index(classes: Sequence[str], name: str) -> int:
    """A class given by name (any case) or index."""
    folded = [c.casefold() for c in classes]
    if name.casefold() in folded:
        return folded.index(name.casefold())
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    raise ValueError(f"--class {name!r}: no such class; classes (index name): "
                     + ", ".join(f"{i} {c}" for i, c in enumerate(classes)))


def _samples(args: argparse.Namespace) -> int:
    from zooscope.config import load_study
    from zooscope.data.datasets import load_dataset
    from zooscope.mistakes.samples import describe_ids, select_samples, wrong_ids

    study = load_study(args.params)
    keep = wrong_ids(args.predictions, _model(study, args.wrong, args.params)) if args.wrong else None
    dataset = load_dataset(study.dataset)
    label = None if args.class_ is None else _class_index(dataset.classes, args.class_)
    chosen = select_samples(dataset, split=args.split, label=label, keep=keep)
    filters = [f"that {args.wrong} gets wrong"] if args.wrong else []
    filters += [f"of class {dataset.classes[label]}"] if label is not None else []
    print(f"{dataset.name}: {describe_ids(dataset.sample_ids)}. The study's splits (zooscope explain <model> <id> "
          "takes an id of any)" + (f", only the samples {' and '.join(filters)}:" if filters else ":"))
    for split, ids in chosen.items():
        total = f" (of {len(dataset.split(split)):,})" if filters else ""
        examples = f"; e.g. {', '.join(map(str, ids[:args.show]))}" if len(ids) and args.show else ""
        print(f"  {split:<11}  {describe_ids(ids)}{total}{examples}")
    if args.wrong and args.split in (None, "train"):
        print(f"  {'train':<11}  no predictions (the predict stage predicts the calibration and eval splits)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zooscope",
        description="Do these models know different things? Inspect a zoo-of-models study declared in params.yaml.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"zooscope {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    v = sub.add_parser("validate", help="check a study file and show the zoo's categories relative to the base",
                       description="Load params.yaml through the study schema (errors name the bad key and what is "
                                   "allowed), then read the dataset and its splits (errors name the file).")
    v.add_argument("--params", default=PARAMS, help="study file (default: %(default)s)")
    v.add_argument("--schema-only", action="store_true", help="check the file only, without reading the dataset")
    v.set_defaults(func=_validate)
    t = sub.add_parser("table", help="print the per-model table (accuracy, NLL, ECE, probe, k-NN, category)",
                       description="Per-model metrics from metrics/models/<id>.json with each model's category relative to the base.")
    t.add_argument("--params", default=PARAMS, help="study file (default: %(default)s)")
    t.add_argument("--metrics-dir", default=MODEL_METRICS, help="folder of per-model metrics (default: %(default)s)")
    t.add_argument("--study-metrics", default=STUDY_METRICS, help="the study's results, whose finding is printed "
                                                                  "after the table (default: %(default)s)")
    t.set_defaults(func=_table)
    d = sub.add_parser("diff", help="what changed between two revisions: models, per-model metrics, per-category results",
                       description="Compare the committed study (params.yaml, metrics/models/<id>.json, metrics/study.json) "
                                   "at two git revisions: models added, removed and changed, per-model metric changes, and "
                                   "per-category changes flagged when the new mean is outside the old 95% bootstrap interval.")
    d.add_argument("rev_a", help="the older revision (e.g. HEAD~1)")
    d.add_argument("rev_b", nargs="?", default=None, help="the newer revision (default: the working tree)")
    d.add_argument("--repo", default=".", help="the study's git repository (default: .)")
    d.add_argument("--html", default=DIFF_REPORT, help="also write this page, relative to --repo "
                                                        "(default: %(default)s; '' for none)")
    d.set_defaults(func=_diff)
    e = sub.add_parser("explain", help="explanation by example: a sample, its prediction and its nearest training "
                                       "samples in a model's embedding, printed and as a page with the images",
                       description="Print what a model predicts for one sample (with its temperature-scaled "
                                   "confidence) and the k training samples nearest (cosine, FAISS) to it in the "
                                   "model's embedding (artifacts/embeddings/<model>/), and write the same as a "
                                   "self-contained HTML page showing the images. Run the embed and predict stages "
                                   "first; 'zooscope samples' lists the valid sample ids.")
    e.add_argument("model", help="model id (a key of 'models' in the study file)")
    e.add_argument("sample_id", type=int, help="sample id of any split (the predictions tables' sample_id column; "
                                               "'zooscope samples' lists them)")
    e.add_argument("-k", type=int, default=8, help="neighbours to show (default: %(default)s)")
    e.add_argument("--out", default=None, help="the page to write (default: "
                                               + EXPLAIN_PAGE.replace("{", "<").replace("}", ">") + "; '' for none)")
    e.add_argument("--params", default=PARAMS, help="study file (default: %(default)s)")
    e.add_argument("--embeddings", default=EMBEDDINGS, help="embeddings folder (default: %(default)s)")
    e.add_argument("--predictions", default=PREDICTIONS_DIR, help="predictions folder (default: %(default)s)")
    e.add_argument("--metrics-dir", default=MODEL_METRICS, help="folder of per-model metrics, whose temperature scales "
                                                                "training samples' logits (default: %(default)s)")
    e.set_defaults(func=_explain)
    sm = sub.add_parser("samples", help="the valid sample ids of each split, optionally only those a model gets wrong "
                                        "or of one class",
                        description="Per split (train, calibration, eval), how many samples it holds, their id ranges "
                                    "and a few ids, after the filters given. Sample ids are the dataset's: on "
                                    "Fashion-MNIST, training images 0..59999 and test images 60000..69999; the study's "
                                    "train and calibration splits are seeded subsets of the training images, its eval "
                                    "split the test images.")
    sm.add_argument("--split", choices=SPLITS, default=None, help="only this split (default: all three)")
    sm.add_argument("--wrong", metavar="MODEL", default=None,
                    help="only samples this model predicts wrongly (calibration and eval: the splits with predictions)")
    sm.add_argument("--class", dest="class_", metavar="CLASS", default=None, help="only samples of this class "
                                                                                  "(name, any case, or index)")
    sm.add_argument("-n", "--show", type=int, default=8, metavar="N", help="ids shown per split (default: %(default)s)")
    sm.add_argument("--params", default=PARAMS, help="study file (default: %(default)s)")
    sm.add_argument("--predictions", default=PREDICTIONS_DIR, help="predictions folder, for --wrong "
                                                                   "(default: %(default)s)")
    sm.set_defaults(func=_samples)
    pa = sub.add_parser("partners", help="a model's partners ranked by the ensemble gain predicted without labels, and "
                                         "how well that ranking did on this zoo",
                        description="Rank a model's partners by the ensemble gain predicted from label-free features "
                                    "(top-1 disagreement, top-5 overlap, debiased CKA, mutual k-NN, the confidences) "
                                    "by a ridge regression fitted on the zoo's pairs without that model, so its own "
                                    "labels never enter; then say how well the ranking matched the measured gains "
                                    "(Spearman, whether the best measured partner is in the top 3) for this model and "
                                    "for every model left out in turn. Reads what the ensemble stage wrote.")
    pa.add_argument("model", help="model id (a key of 'models' in the study file)")
    pa.add_argument("--params", default=PARAMS, help="study file (default: %(default)s)")
    pa.add_argument("--pairs", default=PAIRS, help="the per-pair table (default: %(default)s)")
    pa.add_argument("--study-metrics", default=STUDY_METRICS, help="the study's results, with the partner evaluation "
                                                                  "(default: %(default)s)")
    pa.set_defaults(func=_partners)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from zooscope.config import StudyError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (StudyError, FileNotFoundError, ValueError) as err:
        print(f"zooscope: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
