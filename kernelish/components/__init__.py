"""Components: sessions that do a job on the kernel (the POE::Component:: namespace)."""

__all__: list[str] = []
