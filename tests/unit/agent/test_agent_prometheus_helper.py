"""The real-Prometheus helper's pure part: the scrape configuration it writes."""

from __future__ import annotations

import pytest
from gpulane_dev.prometheus import PrometheusError, scrape_config


def test_scrape_config_scrapes_every_target_at_the_interval() -> None:
    config = scrape_config(["127.0.0.1:9400", "127.0.0.1:9401"], interval_s=1.0)
    assert config["global"]["scrape_interval"] == "1000ms"
    job = config["scrape_configs"][0]
    assert job["job_name"] == "gpulane" and job["scrape_interval"] == "1000ms"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9400", "127.0.0.1:9401"]}]


def test_no_target_is_an_error() -> None:
    with pytest.raises(PrometheusError, match="targets"):
        scrape_config([])
