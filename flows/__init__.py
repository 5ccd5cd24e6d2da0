"""Prefect flows and deployments: thin orchestration over ser_pipeline."""
