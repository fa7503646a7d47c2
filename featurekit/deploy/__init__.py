"""Running elsewhere: Kubeflow Spark operator manifests and the Kubeflow pipeline from job specs and
conf/, and KServe InferenceServices of model versions in the Model Registry."""

from featurekit.deploy.sparkapp import Rendered, kubernetes_of, render

__all__ = ["Rendered", "kubernetes_of", "render"]
