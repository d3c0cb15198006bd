"""gpulane_sim: the trace-driven simulator over the same gpulane_core decisions as the operator."""
