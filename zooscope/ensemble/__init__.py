"""Do two models make the same mistakes, and does averaging them help? The ensemble stage's science:
error consistency and pair ensembles (``agreement``, all pairs at once in ``blockwise``), greedy ensembles
(``greedy``), shared
bootstrap resamples (``bootstrap``), the per-category headline (``categories``), partner choice without labels
(``partners``), accuracy per group of classes, worst groups and distillation per group (``groups``), and
``tables``, the stage's one call."""

from zooscope._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "agreement": ("error_consistency", "disagreement", "pair_ensemble", "agreement_from_counts", "bootstrap_statistics",
                  "bootstrap_pair", "all_pairs_agreement", "all_pairs_disagreement", "class_specialisation",
                  "image_split"),
    "greedy": ("greedy_ensemble", "ensemble_curve"),
    "blockwise": ("ensemble_pairs",),
    "bootstrap": ("bootstrap_weights", "resampled_counts", "interval95", "model_resample_weights"),
    "categories": ("PAIRS_COLUMNS", "pairs_table", "category_tables", "finding", "best_partners", "plot_frames",
                   "study_metrics", "format_categories", "CATEGORY_METRIC_KEYS", "category_metrics", "headline"),
    "pairs": ("PairTable", "ensemble_keys", "ensemble_rows", "ensemble_table", "calibration_columns", "group_table"),
    "partners": ("topk_overlap", "confidence_features", "fit_ridge", "held_out_predictions", "ranking_quality",
                 "partner_choice", "ordered_partners"),
    "groups": ("GROUPS_COLUMNS", "GroupAccuracy", "group_accuracy", "worst_groups", "student_vs_teacher",
               "groups_hurt_by_ensembles", "subgroup_tables"),
    "tables": ("EnsembleTables", "ensemble_tables"),
})
