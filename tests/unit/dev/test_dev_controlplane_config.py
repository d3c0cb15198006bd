"""Command lines and kubeconfig of the local control plane (flags per control-plane.md §3/§4)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml
from gpulane_dev import pki
from gpulane_dev.controlplane import apiserver_argv, etcd_argv, kubeconfig_text, kwok_argv, kwok_config_text


def test_etcd_is_loopback_only_and_skips_fsync() -> None:
    argv = etcd_argv(Path("/b/etcd"), Path("/d"), 2379, 2380)
    assert argv[0] == "/b/etcd"
    assert "--listen-client-urls=http://127.0.0.1:2379" in argv
    assert "--listen-peer-urls=http://127.0.0.1:2380" in argv
    assert "--initial-cluster=default=http://127.0.0.1:2380" in argv
    assert "--unsafe-no-fsync" in argv
    assert "--data-dir=/d" in argv


def test_apiserver_has_tls_rbac_and_both_admin_identities(tmp_path: Path) -> None:
    certs = pki.generate(tmp_path)
    argv = apiserver_argv(Path("/b/kube-apiserver"), certs, 6443, 2379, tmp_path / "c")
    assert "--authorization-mode=RBAC" in argv
    assert "--bind-address=127.0.0.1" in argv
    assert "--secure-port=6443" in argv
    assert "--etcd-servers=http://127.0.0.1:2379" in argv
    assert f"--client-ca-file={certs.ca_cert}" in argv
    assert f"--token-auth-file={certs.token_file}" in argv
    assert f"--tls-cert-file={certs.serving_cert}" in argv
    assert f"--service-account-signing-key-file={certs.sa_private}" in argv
    assert "--service-account-issuer=https://127.0.0.1:6443/" in argv
    assert "--disable-admission-plugins=ServiceAccount" in argv


def test_kwok_manages_only_annotated_nodes() -> None:
    argv = kwok_argv(Path("/b/kwok"), Path("/k"), Path("/c"))
    assert "--manage-all-nodes=false" in argv
    assert "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake" in argv
    assert "--kubeconfig=/k" in argv and "--config=/c" in argv


def test_kwok_config_has_node_and_pod_stages() -> None:
    docs = list(yaml.safe_load_all(kwok_config_text()))
    assert all(d["kind"] == "Stage" for d in docs)
    names = [d["metadata"]["name"] for d in docs]
    assert names == ["node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-complete", "pod-delete",
                     "gpulane-pod-complete-after-delay"]  # fmt: skip


def test_kubeconfig_embeds_the_ca_and_admin_cert(tmp_path: Path) -> None:
    certs = pki.generate(tmp_path)
    config = yaml.safe_load(kubeconfig_text("https://127.0.0.1:6443", certs))
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == certs.ca_cert.read_bytes()
    user = config["users"][0]["user"]
    assert base64.b64decode(user["client-certificate-data"]) == certs.admin_cert.read_bytes()
    assert base64.b64decode(user["client-key-data"]) == certs.admin_key.read_bytes()
    assert config["current-context"] == "gpulane-dev"
