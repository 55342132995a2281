"""mlipdrive's own i-PI socket client (``mlipdrive.ipi``)."""
