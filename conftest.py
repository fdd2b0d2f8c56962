"""Both suites: a test that logs an ERROR (or worse) fails, as under Odoo's own runner.

A test that provokes an error on purpose mutes that logger (``odoo.tools.mute_logger``);
any other ERROR line in a test's setup, body or teardown is a defect, so that the install
and test log stay free of ERROR lines.
"""

import logging

import pytest


class _ErrorRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _fail_on_error_logs():
    handler = _ErrorRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        outcome = yield
    finally:
        root.removeHandler(handler)
    if handler.records and outcome.excinfo is None:
        lines = "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in handler.records)
        pytest.fail(f"the test logged errors (mute the logger if expected):\n{lines}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _fail_on_error_logs()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _fail_on_error_logs()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield from _fail_on_error_logs()
