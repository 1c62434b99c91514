"""Shared pytest setup. Plugins: fixture modules living next to the tests."""

pytest_plugins = ["browser", "redisd", "sshd"]
