"""Monitoring: metrics every minute, anomaly detection, drift, alerts grouped into incidents."""
