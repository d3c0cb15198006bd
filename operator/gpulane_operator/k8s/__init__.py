"""The only layer that talks to the Kubernetes API: pods, bindings, events and job status patches."""
