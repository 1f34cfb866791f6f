"""Workflows (level 2): versioned definitions of steps run on the Worker as durable,
resumable runs (DESIGN §10). Step kinds plug in through :mod:`.steps`; a chat request starts a
run through the ``workflow`` pipeline step (:mod:`.chat`)."""
