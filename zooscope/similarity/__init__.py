"""Do two models represent the samples alike, and do their features overlap? The similarity stage's
science: CKA (``cka``), mutual k-NN alignment (``neighbours``), their permutation nulls (``nulls``),
concatenated and mixed-feature probes (``overlap``), and ``tables``, the stage's one call."""

from zooscope._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "cka": ("CentredGram", "centred_gram", "linear_cka", "linear_cka_debiased", "cka_scores", "cka_pairs"),
    "neighbours": ("knn_ids", "mutual_knn", "mutual_knn_scores", "mutual_knn_pairs"),
    "nulls": ("permutation_null",),
    "overlap": ("concat_probe_acc", "mix_curve", "extreme_pairs", "outermost"),
    "tables": ("SimilarityTables", "similarity_tables", "cka_heatmap"),
})
