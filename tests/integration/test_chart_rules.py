"""The chart's alerting rules under the real promtool: syntax, the rendered PrometheusRule, and unit tests
that make each alert fire (or not) on synthetic series with the contract's labels."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from charthelm import CHART, render
from gpulane_dev.binaries import Binaries

pytestmark = pytest.mark.integration

RULES = CHART / "rules" / "gpulane-alerts.yaml"
GPU = 'Hostname="n1", gpu="0", UUID="GPU-a", modelName="Fake-GPU-16G"'


def promtool(binaries: Binaries, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binaries.promtool), *args], capture_output=True, text=True, timeout=120, check=False)


def test_promtool_accepts_the_rules_file(dev_binaries: Binaries) -> None:
    result = promtool(dev_binaries, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_promtool_accepts_the_rendered_prometheusrule(dev_binaries: Binaries, tmp_path: Path) -> None:
    docs = render(dev_binaries.helm, "gl", "default", ("--set", "monitoring.prometheusRule.enabled=true"))
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())  # the same groups, nothing templated away
    spec = tmp_path / "rendered.yaml"
    spec.write_text(yaml.safe_dump(rule["spec"]))
    result = promtool(dev_binaries, "check", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr


def _alert(name: str, at: str, labels: dict[str, str] | None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    expected: list[dict[str, Any]] = []
    if labels is not None:
        expected.append({"exp_labels": labels, **({"exp_annotations": annotations} if annotations else {})})
    return {"eval_time": at, "alertname": name, "exp_alerts": expected}


def test_alerts_fire_on_synthetic_series(dev_binaries: Binaries, tmp_path: Path) -> None:
    gpu_labels = {"Hostname": "n1", "gpu": "0", "UUID": "GPU-a", "modelName": "Fake-GPU-16G"}
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {   # an operator and a node that report
                "interval": "1m",
                "input_series": [
                    {"series": f"gpulane_gpu_healthy{{{GPU}}}", "values": "1 1 0x10"},
                    {"series": 'gpulane_gpu_healthy{Hostname="n1", gpu="1", UUID="GPU-b", modelName="m"}',
                     "values": "1x12"},
                    {"series": 'gpulane_queue_length{class="guaranteed"}', "values": "0x5 2x40"},
                    {"series": 'gpulane_queue_length{class="best-effort"}', "values": "0x46"},
                    {"series": 'gpulane_lane_violations_total{Hostname="n1", namespace="ns", pod="p", lane="lane-1",'
                               ' action="report"}', "values": "0 0 1 1 1 1"},
                    {"series": 'gpulane_allocations_total{Hostname="n1", result="error"}', "values": "0x12"},
                ],
                "alert_rule_test": [
                    _alert("GpulaneGpuUnhealthy", "3m", None),  # unhealthy since 2m: still pending
                    _alert("GpulaneGpuUnhealthy", "5m", {**gpu_labels, "severity": "critical"}, {
                        "summary": "GPU 0 on n1 is unhealthy.",
                        "description": "The node agent reports GPU 0 (GPU-a) unhealthy; its memory devices are"
                                       " withdrawn from the kubelet and no new job is placed on it.",
                    }),
                    _alert("GpulaneJobsPending", "20m", None),
                    _alert("GpulaneJobsPending", "40m", {"class": "guaranteed", "severity": "warning"}, {
                        "summary": "2 guaranteed GPUShareJob(s) pending for 30 minutes.",
                        "description": "Jobs of class guaranteed have waited for a GPU lane for 30 minutes. See"
                                       " the Scheduled condition of the pending jobs (kubectl get gsj -A) and"
                                       " gpulane_unschedulable_total.",
                    }),
                    _alert("GpulaneLaneViolation", "4m", {
                        "Hostname": "n1", "namespace": "ns", "pod": "p", "lane": "lane-1", "action": "report",
                        "severity": "warning"}, {
                        "summary": "Pod ns/p exceeded its lane on n1.",
                        "description": "The pod used more GPU memory than its lane allows (lane lane-1, action"
                                       " report); it may starve the other jobs sharing the GPU.",
                    }),
                    _alert("GpulaneAllocationErrors", "10m", None),  # the error series never grows
                    _alert("GpulaneOperatorAbsent", "20m", None),
                ],
            },
            {   # nothing reports at all
                "interval": "1m",
                "input_series": [{"series": 'up{job="other"}', "values": "1x15"}],
                "alert_rule_test": [
                    _alert("GpulaneOperatorAbsent", "5m", None),
                    _alert("GpulaneOperatorAbsent", "12m", {"severity": "critical"}, {
                        "summary": "No gpulane operator is reporting metrics.",
                        "description": "gpulane_queue_length has been missing for 10 minutes: the operator is"
                                       " down or not scraped, so no GPUShareJob is being placed.",
                    }),
                ],
            },
        ],
    }
    spec = tmp_path / "alerts_test.yaml"
    spec.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool(dev_binaries, "test", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_can_fail(dev_binaries: Binaries, tmp_path: Path) -> None:
    """The harness above would notice a wrong expectation (here: an unhealthy GPU that never alerts)."""
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": f"gpulane_gpu_healthy{{{GPU}}}", "values": "1x10"}],
            "alert_rule_test": [_alert("GpulaneGpuUnhealthy", "5m", {"severity": "critical"})],
        }],
    }
    spec = tmp_path / "wrong_test.yaml"
    spec.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool(dev_binaries, "test", "rules", str(spec))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_plain_prometheus_example_is_valid_and_matches_the_chart(dev_binaries: Binaries) -> None:
    example = CHART / "prometheus" / "prometheus.yml"
    result = promtool(dev_binaries, "check", "config", str(example))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout + result.stderr  # the alerts file is loaded too
    services = {d["metadata"]["name"]: d for d in render(dev_binaries.helm, "gpulane", "gpulane") if d["kind"] == "Service"}
    config = yaml.safe_load(example.read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    host, port = jobs["gpulane-operator"]["static_configs"][0]["targets"][0].rsplit(":", 1)
    operator = services[host.split(".")[0]]
    assert host.split(".")[1] == "gpulane" and int(port) == operator["spec"]["ports"][0]["port"]
    dns = jobs["gpulane-node-agent"]["dns_sd_configs"][0]
    agent = services[dns["names"][0].split(".")[0]]
    assert agent["spec"]["clusterIP"] == "None" and dns["port"] == agent["spec"]["ports"][0]["port"]
    assert jobs["gpulane-node-agent"]["honor_labels"] is True
