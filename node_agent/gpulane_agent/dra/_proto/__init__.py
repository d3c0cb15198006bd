"""Generated kubelet DRA (v1, v1beta1) and plugin-registration (v1) stubs (grpcio-tools 1.85.1); see README.md."""
