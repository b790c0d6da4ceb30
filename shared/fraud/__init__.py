"""Attendance-fraud detection: sites, holidays, events, labels, features, per-tenant XGBoost."""
