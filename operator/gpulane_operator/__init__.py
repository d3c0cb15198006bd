"""gpulane_operator: the kopf operator that orders, places and binds GPUShareJobs."""
