"""API coordinates of gpulane's resources, shared by the pure modules and the k8s layer."""

from __future__ import annotations

GROUP = "gpulane.dev"
VERSION = "v1alpha1"
PLURAL = "gpusharejobs"
KIND = "GPUShareJob"
GPUNODES = "gpunodes"
API_VERSION = f"{GROUP}/{VERSION}"
