"""The registry tests use the backend tests' tiny model and adapters (a real PEFT adapter to publish)."""

from tests.backend.conftest import registry, sources, tiny_model_dir  # noqa: F401 - fixtures
