"""The walk's world and its quiet loggers, defined beside the walk's machinery."""

from tests.console.test_no_server_errors import quiet_refusals, world  # noqa: F401 - fixtures
