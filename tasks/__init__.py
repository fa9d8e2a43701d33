"""Background processes: the Dramatiq worker (`dramatiq tasks`) and the scheduler loop.

The broker module is imported first, so the actors bind to it.
"""

from tasks import (
    broker,  # noqa: F401
    send,  # noqa: F401
)
