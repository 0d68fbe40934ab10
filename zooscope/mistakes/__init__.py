"""Which mistakes are reasonable, and what does each model find typical? The mistakes stage's science
(Stock & Cisse 2018): the mistake taxonomy, consensus errors and neighbour disagreement (``taxonomy``),
MMD-critic prototypes and criticisms (``critic``), adversarial robustness and transfer (``adversarial``),
explanation by example (``explain``), and ``tables``, the stage's one call."""

from zooscope._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "taxonomy": ("Consensus", "NeighbourDisagreement", "near_miss_k", "mistake_counts", "confusion_pairs",
                 "consensus_errors", "neighbour_disagreement"),
    "critic": ("Criticism", "median_gamma", "mmd_critic", "SetMMD", "prototype_mmd"),
    "adversarial": ("Classifier", "classifier", "pixel_inputs", "fgsm", "pgd", "attack", "ATTACKS", "predict",
                    "robust_accuracy", "Transfer", "transfer_matrix", "transfer_rates", "matrix_correlation"),
    "explain": ("nearest_training", "explain_sample"),
    "tables": ("MistakesTables", "mistakes_tables"),
})
