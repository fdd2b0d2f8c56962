# ruff: noqa: F401
from . import test_queue_job
