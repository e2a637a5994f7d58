"""MLflow "model from code" for a trained scorer: loads state_dict + JSON config, never a pickled module.

Input: a DataFrame with the scorer's input columns (see the logged scorer.json); output: one score per row.
"""

from __future__ import annotations

from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class ScorerModel(PythonModel):
    def load_context(self, context):  # noqa: ANN001, ANN201 - MLflow's signature
        from autos.scorer import load_scorer

        self.model, self.name, self.settings, self.meta = load_scorer(context.artifacts["scorer_dir"])

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        import numpy as np

        from autos.scorer import predict

        columns = {c: np.asarray(model_input[c], dtype=np.float32) for c in self.settings.inputs}
        return predict(self.model, columns)


set_model(ScorerModel())
