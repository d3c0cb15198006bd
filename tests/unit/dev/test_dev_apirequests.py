from gpulane_dev import apirequests
from gpulane_dev.apirequests import RequestKey

PAGE = """# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 50
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="binding",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="gpulane.dev",resource="gpusharejobs",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 7
apiserver_request_total{code="201",component="apiserver",dry_run="",group="gpulane.dev",resource="gpusharejobs",scope="resource",subresource="",verb="POST",version="v1alpha1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 3
apiserver_request_total_other{verb="GET"} 9
"""


def test_parse_sums_codes_and_skips_non_resource_requests() -> None:
    counts = apirequests.parse(PAGE)
    assert counts == {
        RequestKey("POST", "pods", "binding"): 52,
        RequestKey("PATCH", "gpulane.dev/gpusharejobs", "status"): 7,
        RequestKey("POST", "gpulane.dev/gpusharejobs"): 5,
    }


def test_delta_keeps_only_changed_rows() -> None:
    before = {RequestKey("POST", "pods"): 3.0, RequestKey("GET", "pods"): 1.0}
    after = {RequestKey("POST", "pods"): 10.0, RequestKey("GET", "pods"): 1.0, RequestKey("POST", "events"): 4.0}
    assert apirequests.delta(before, after) == {RequestKey("POST", "pods"): 7.0, RequestKey("POST", "events"): 4.0}


def test_attribution_separates_the_bench_and_kwok_from_the_operator() -> None:
    assert apirequests.attribute(RequestKey("POST", "gpulane.dev/gpusharejobs")) == apirequests.BENCH
    assert apirequests.attribute(RequestKey("PATCH", "gpulane.dev/gpusharejobs", "status")) == apirequests.OPERATOR
    assert apirequests.attribute(RequestKey("PATCH", "gpulane.dev/gpusharejobs")) == apirequests.OPERATOR
    assert apirequests.attribute(RequestKey("POST", "pods", "binding")) == apirequests.OPERATOR
    assert apirequests.attribute(RequestKey("PATCH", "pods", "status")) == apirequests.KWOK
    assert apirequests.attribute(RequestKey("WATCH", "pods")) == apirequests.WATCHES
    assert apirequests.attribute(RequestKey("PUT", "coordination.k8s.io/leases")) == apirequests.KWOK
    counts = {RequestKey("POST", "pods"): 4.0, RequestKey("POST", "events"): 2.0, RequestKey("PATCH", "pods", "status"): 8.0}
    assert apirequests.by_owner(counts) == {apirequests.OPERATOR: 6.0, apirequests.KWOK: 8.0}
