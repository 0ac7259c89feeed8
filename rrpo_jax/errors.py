"""The errors every layer may raise, in a leaf module (imports nothing of the package)."""


class ConfigError(ValueError):
  """A config value is invalid; the message names the field."""
