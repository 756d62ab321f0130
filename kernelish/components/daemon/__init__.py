"""The Daemon component: a port of POE::Component::Daemon."""

__all__: list[str] = []
