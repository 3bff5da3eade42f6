"""The supervised recursive controller: optimal-trajectory datasets, the model, its trainer,
the ``predict``/``plan`` wrapper and the refinement analysis."""
