"""gunicorn's logger with link tokens masked in the access log (and its error log).

The Procfile starts gunicorn with ``--logger-class config.gunicorn_logger.TokenMaskingLogger``:
every atom of the access-log format (the request line ``%(r)s``, the path ``%(U)s``, the query
``%(q)s``, the referer ``%(f)s``, any ``%({header}i)s``) goes through ``core.redaction`` first, so
``GET /p/acme/recover/<token>/`` is written as ``/p/acme/recover/[removed]/``.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from core.redaction import TokenMaskFilter, redact_tokens


class TokenMaskingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(TokenMaskFilter())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in list(atoms.items()):
            if isinstance(value, str):
                atoms[key] = redact_tokens(value)
        return atoms
