"""Expected failures: the CLI prints them as one line, never as a traceback."""

from __future__ import annotations


class PaywallError(Exception):
    """An expected error with a message a person can act on."""


class ConfigError(PaywallError):
    """A setting is wrong: the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
