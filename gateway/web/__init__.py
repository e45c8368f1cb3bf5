"""The operators' web dashboard (server-rendered pages under /ui/ on the gateway's HTTP listener)."""

from .views import WebDashboard

__all__ = ["WebDashboard"]
