"""Grafana HTTP client and the dashboard/datasource push logic."""
