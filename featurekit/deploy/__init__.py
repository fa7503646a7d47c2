"""Running jobs elsewhere: Kubeflow Spark operator manifests from job specs and conf/."""

from featurekit.deploy.sparkapp import Rendered, kubernetes_of, render

__all__ = ["Rendered", "kubernetes_of", "render"]
