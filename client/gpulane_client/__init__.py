"""gpulane_client: the small library a training loop uses to take lane turns and prefetch."""
