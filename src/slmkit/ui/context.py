"""What a page is rendered from: the project's config, an open registry, the visitor, a message."""

from __future__ import annotations

from dataclasses import dataclass

from slmkit.config import ProjectConfig
from slmkit.registry import Registry
from slmkit.ui.security import Visitor


@dataclass
class Context:
    config: ProjectConfig
    registry: Registry
    visitor: Visitor
    done: str | None = None  # what the last action did, shown once
    error: str | None = None  # why the last action was refused, shown once
    error_item: str | None = None  # the review item that refused action was about
