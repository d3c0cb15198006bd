"""The agent's only door to the Kubernetes API: a Protocol, a kubernetes_asyncio adapter and an in-memory twin."""
