"""Deployment: what each engine kind needs as a container, and the manifests made from it."""
