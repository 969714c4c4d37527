"""Model files: the manifest of what Spine needs, and fetching and checking them (`spine models`)."""

from device.models.manifest import ModelFile, default_models_dir, load_manifest, require_model

__all__ = ["ModelFile", "default_models_dir", "load_manifest", "require_model"]
