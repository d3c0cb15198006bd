"""Cluster placement mode: replay the Alibaba GPU-sharing trace under FGD-family policies and gpulane's."""
