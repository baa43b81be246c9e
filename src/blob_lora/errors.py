"""Project error types: one base class so the CLI can print one line and exit non-zero."""


class BlobLoraError(Exception):
    """A user-facing error whose message names the problem and the fix."""


class ConfigError(BlobLoraError):
    """Bad configuration: unknown keys, invalid values, no matching modules."""


class CheckpointError(BlobLoraError):
    """A checkpoint or adapter that is corrupted or does not match the model."""
