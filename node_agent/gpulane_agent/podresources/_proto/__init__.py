"""Generated kubelet PodResources v1 stubs (grpcio-tools 1.85.1, gencode 7.35.1); see README.md."""
