"""The per-model stages' science: embeddings out of a network (embed), a linear probe and k-NN on them
(probe), and temperature-scaled predictions with their quality (predict)."""

from zooscope._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "embed": ("extract", "embed_splits", "pick_device", "pick_dtype"),
    "probe": ("LinearProbe", "fit_logistic", "fit_probe", "knn_accuracy", "save_probe", "load_probe", "ProbeResult",
              "probe_embeddings"),
    "calibration": ("TEMPERATURE_BOUNDS", "fit_temperature", "at_bound", "softmax", "nll", "ece", "topk"),
    "knn": ("l2_normalize", "search", "majority_vote", "knn_classify", "faiss_uses_gpu"),
    "predictions": ("SplitPredictions", "ModelPredictions", "predict_splits"),
})
