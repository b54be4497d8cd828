"""Configuration: one TOML file → validated, frozen pydantic models. No I/O but reading the file."""

from edged.config.app import AppConfig, load_config, parse_config

__all__ = ["AppConfig", "load_config", "parse_config"]
