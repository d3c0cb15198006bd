"""gpulane_dev: a real local control plane (etcd + kube-apiserver + kwok), helm and Prometheus for tests and people."""
