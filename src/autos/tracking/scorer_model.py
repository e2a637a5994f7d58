"""MLflow "model from code" for a trained scorer: loads state_dict + JSON config, never a pickled module.

Input: a DataFrame with the scorer's input columns, float32 (the model's signature lists them in order, as
``tracking.log_scorer_model`` logs it; MLflow refuses float64 columns, cast with ``df.astype("float32")``); output:
one float32 score per row (higher = keep).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class ScorerModel(PythonModel):
    def load_context(self, context):  # noqa: ANN001, ANN201 - MLflow's signature
        from autos.scorer import load_scorer

        self.model, self.name, self.settings, self.meta = load_scorer(context.artifacts["scorer_dir"])

    # The DataFrame hint tells MLflow that the signature logged with the model does the input validation (an
    # unannotated predict makes it warn on every log_model).
    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:  # noqa: ANN001
        from autos.scorer import predict

        columns = {c: np.asarray(model_input[c], dtype=np.float32) for c in self.settings.inputs}
        return predict(self.model, columns)


set_model(ScorerModel())
