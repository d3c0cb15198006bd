"""Built-in scheduler plugins: filters and the binpack, spread and lane-aware scorers."""
