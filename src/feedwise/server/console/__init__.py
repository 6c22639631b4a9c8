"""The marketer's console at ``/console``: login with an API key, server-rendered pages
(overview, feed inspector, campaigns, models and policies, audience, listening, care) over
the same functions the JSON routes call. See ``docs/console.md``."""

from feedwise.server.console.routes import router

__all__ = ["router"]
