"""mlstack's domain: cloud-neutral, never imports chalice or functions/."""
