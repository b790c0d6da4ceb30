"""Sync-conflict prediction: events, features, training, serving, outcomes, retraining."""
