"""``recorded``: sent after audit entries are written (in the writer's transaction), with the
``tenant_id`` they belong to (``None`` for instance entries) and, from ``record()``, the
``event``. Layers above listen to it (the
stored tenant figures are marked dirty by ``accounts.app_users.figures``) without the trail
knowing about them."""

from __future__ import annotations

from django.dispatch import Signal

recorded = Signal()
