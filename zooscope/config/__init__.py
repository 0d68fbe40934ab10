"""The study schema (``params.yaml``): the dataset, the zoo, and every stage's settings, validated once.

- :mod:`zooscope.config.study`: :class:`Study`, :class:`DatasetSpec`, loading the YAML file, writing it resolved;
- :mod:`zooscope.config.zoo`: :class:`ModelSpec` (source, tags, architecture, recipe options);
- :mod:`zooscope.config.settings`: one ``*Settings`` class per stage section (each may be left out: defaults);
- :mod:`zooscope.config._errors`: messages that name the bad key and what is allowed there.
"""

from zooscope.config._errors import StudyError
from zooscope.config.settings import (EmbedSettings, EnsembleSettings, MistakesSettings, PredictSettings, ProbeSettings,
                                      ReportSettings, ShiftSettings, SimilaritySettings)
from zooscope.config.study import DatasetSpec, Study, dump_study, load_study, parse_study, write_study
from zooscope.config.lint import ZooWarning, lint_zoo
from zooscope.config.zoo import (ARCH_KINDS, COMPRESSION_RECIPES, RECIPES, SOURCE_KINDS, ArchSpec, Augment,
                                 AutoencoderTrain, DistillTrain, Imbalance, ModelSpec, PreprocessSpec, PruneTrain,
                                 QuantizeTrain, RandomFeaturesTrain, SimCLRTrain, SupervisedTrain, Tags, TeacherSpec,
                                 compression_parents, compression_roots, recipe_train_options, same_model,
                                 teacher_of, trained_apart)

__all__ = [
    "ARCH_KINDS", "RECIPES", "COMPRESSION_RECIPES", "PruneTrain", "QuantizeTrain", "compression_parents",
    "compression_roots", "same_model", "trained_apart", "SOURCE_KINDS", "StudyError", "Study", "DatasetSpec", "ModelSpec", "PreprocessSpec", "Tags",
    "ArchSpec",
    "Augment", "Imbalance", "SupervisedTrain", "DistillTrain", "TeacherSpec", "SimCLRTrain", "AutoencoderTrain",
    "RandomFeaturesTrain", "recipe_train_options", "teacher_of", "load_study", "parse_study", "dump_study",
    "write_study", "EmbedSettings",
    "ProbeSettings", "PredictSettings", "EnsembleSettings", "SimilaritySettings", "ReportSettings", "MistakesSettings",
    "ShiftSettings",
    "ZooWarning", "lint_zoo",
]
