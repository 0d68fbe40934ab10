"""The zoo off the test set (docs/science.md section 9): seeded corruptions of the eval images (corruptions), the
shifted sets a study declares (sets), one model's predictions on them (predict: the ``shifted@<model>`` stage),
effective robustness and corruption errors (robustness), and the zoo-wide tables of the ``shift`` stage (tables)."""

from zooscope._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "corruptions": ("CORRUPTIONS", "corrupt", "affine"),
    "sets": ("ShiftedSet", "shifted_sets", "shift_positions", "shifted_dataset"),
    "predict": ("shifted_logits", "set_predictions"),
    "robustness": ("probit", "effective_robustness", "corruption_errors"),
    "tables": ("CLEAN", "MEAN", "ShiftTables", "shift_tables"),
})
