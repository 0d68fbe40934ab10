"""Compressed models against their parents (``recipe:prune``, ``recipe:quantize``; docs/science.md section 10).

- :mod:`zooscope.compression.tables`: the ``compression`` stage's table, metrics and plot: sparsity, accuracy, kappa
  and churn with the parent, on the eval images, on the corrupted sets and per group of classes.

The compressing itself is :mod:`zooscope.zoo.compress` (pruning and int8 quantisation of a network).
"""

from zooscope.compression.tables import (COMPRESSION_COLUMNS, PLOT_STATISTICS, CompressionTables, compression_tables,
                                         describe, plot_frame)

__all__ = ["COMPRESSION_COLUMNS", "PLOT_STATISTICS", "CompressionTables", "compression_tables", "describe", "plot_frame"]
