"""Background processes: the Dramatiq worker (`dramatiq tasks`) and the scheduler loop.

The broker module is imported first, so the actors bind to it.

Why this package builds the broker on import, where nothing else in the service builds
anything at import: `dramatiq tasks` (the worker's command, kept for operators) imports
this package and then reads the actors it declared, and a Dramatiq actor binds to the
broker in force when its module is imported. So the broker must exist before
tasks/send.py is read, and this file is the only place run before it. The broker object
opens no connection until a message is sent or consumed; the worker's pool, provider
client and Redis guard are built per process by tasks/runtime.py at worker boot.
"""

from tasks import (
    broker,  # noqa: F401
    send,  # noqa: F401
)
