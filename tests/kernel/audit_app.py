"""An app with the test suite's audit extension (``tenfold --app kernel.audit_app:make_app()``)."""

from __future__ import annotations

from fastapi import FastAPI

from tenfold import create_app

from .audit_ext import AuditExtension


def make_app() -> FastAPI:
    """Built on call, so each CLI invocation reads the environment it is given."""
    return create_app(extensions=[AuditExtension()], configure_logs=False)
