"""Kubeflow Pipelines v2: a warmup step between training and serving, run locally.

    pip install 'tfwarm_export[kfp]'
    python examples/kfp_pipeline.py [--out DIR]

The pipeline imports a SavedModel as a ``Model`` artifact and runs the
tfwarm_export component on it; its output artifact is a TF Serving base path
(``<version>/`` with the warmup file, plus ``tfwarm_report.json``). Here it runs
with ``kfp.local``'s SubprocessRunner in this Python environment; on a cluster,
build an image with ``pip install tfwarm_export[kfp]`` and pass it as
``kfp_warmup_component(base_image=...)``. Exits 0 with a message if kfp is not
installed.

No ``from __future__ import annotations``: KFP reads the pipeline's annotations as types.
"""
import argparse
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    from kfp import dsl, local
except ImportError:
    print("kfp is not installed; `pip install 'tfwarm_export[kfp]'` to run this example. Skipping.")
    sys.exit(0)

import tensorflow as tf  # noqa: E402

from tfwarm_export.components import REPORT_NAME, kfp_warmup_component  # noqa: E402

warmup_op = kfp_warmup_component()


@dsl.pipeline(name="train-warm-serve")
def warm_pipeline(model_uri: str, version: int = 1):
    """Import a trained model, warm it; a deploy step would consume its warmed_model output."""
    model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model)
    warmup_op(model=model.output, batch_sizes=[1, 8, 32], version=version)


class Scorer(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.normal([8, 1], seed=1))

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="features")])
    def score(self, features):
        return {"score": tf.matmul(features, self.w)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="working directory (default: a temp dir)")
    args = parser.parse_args(argv)
    work = pathlib.Path(args.out or tempfile.mkdtemp(prefix="tfwarm-kfp-")).resolve()

    scorer = Scorer()
    trained = work / "trained_model"
    tf.saved_model.save(scorer, str(trained), signatures={"serving_default": scorer.score})

    # The subprocess runs the component in this interpreter; make a source checkout importable.
    repo = str(pathlib.Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "pipeline_root"))
    warm_pipeline(model_uri=str(trained), version=1)

    for report in sorted((work / "pipeline_root").rglob(REPORT_NAME)):
        print(f"warmed model base path: {report.parent} -> {sorted(os.listdir(report.parent))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
