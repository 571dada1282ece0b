"""What a worker process tells the tasks it runs (set by ``jobs.worker``, read by the tasks).

``STOP`` is set when the worker is asked to shut down (SIGTERM, SIGINT): a long task returns at
its next safe point and queues its own continuation, so a restart never waits for a whole job.
"""

from __future__ import annotations

import threading

STOP = threading.Event()


def stopping() -> bool:
    return STOP.is_set()
