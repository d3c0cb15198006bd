"""The Prometheus exporter: metric names, a custom Collector over the backend and node view, the HTTP server."""
