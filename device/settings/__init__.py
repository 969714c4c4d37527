"""The settings' sections, one module per area; `device.config` gathers them into `Config` and re-exports them."""
