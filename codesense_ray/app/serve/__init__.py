"""The HTTP API on Ray Serve: the FastAPI ingress, the retriever and generator deployments, `build_app`."""
