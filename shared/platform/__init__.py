"""The platform every loop stands on: model-kind contract, registry, serving, lifecycle, tenants, jobs."""
